"""Maintenance windows on pages other than their own: the asset page's panel and badge (so its
view need not know about windows; the fleet overview's badges are read by
`fleet.selectors.fleet_overview`)."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from fleet import windows
from fleet.maintenance import in_maintenance
from fleet.models import Asset

register = template.Library()


@register.inclusion_tag("fleet/panels/_windows.html", takes_context=True)
def asset_windows_panel(context: template.Context, asset: Asset) -> dict[str, Any]:
    """The asset's current and coming windows the reader may see (scoped by the reader)."""
    user = context["request"].user
    covering = windows.covering_asset(actor=user, asset=asset)
    return {
        "asset": asset,
        "user": user,
        "asset_windows": windows.upcoming(covering, now=timezone.now())[:10],
        "windows_may_plan": windows.may_plan(user),
    }


@register.simple_tag
def asset_in_maintenance(asset: Asset) -> bool:
    """Is `asset` inside a maintenance window now? The overview's badge, for one asset."""
    return in_maintenance(asset.pk, timezone.now())
