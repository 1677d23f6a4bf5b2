"""Maintenance windows on pages other than their own: the asset page's panel and badge, the
fleet overview's badges (so those views need not know about windows)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django import template
from django.utils import timezone

from fleet import windows
from fleet.maintenance import windows_for_assets
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
def maintenance_now(assets: Iterable[Asset]) -> set[Any]:
    """Ids of those of `assets` that are inside a maintenance window now (one query)."""
    ids = [a.pk for a in assets]
    if not ids:
        return set()
    now = timezone.now()
    return {
        pk for pk, spans in windows_for_assets(ids, now, now + timedelta(microseconds=1)).items() if spans
    }


@register.simple_tag
def asset_in_maintenance(asset: Asset) -> bool:
    """Is `asset` inside a maintenance window now? The overview's badge, for one asset."""
    return asset.pk in maintenance_now([asset])
