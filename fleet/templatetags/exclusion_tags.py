"""Customer-caused stops on the asset page (fleet/panels/_exclusions.html), so the asset view
need not know about them (docs/availability.md, "Customer-caused stops")."""

from __future__ import annotations

from typing import Any

from django import template

from fleet import exclusions
from fleet.models import Asset

register = template.Library()


@register.simple_tag(takes_context=True)
def asset_exclusions_panel(context: template.Context, asset: Asset) -> dict[str, Any]:
    """The asset's marked stops the reader may see, and whether the reader may mark more."""
    user = context["request"].user
    return {
        "rows": list(exclusions.exclusions_for_asset(user, asset)[:20]),
        "may_mark": exclusions.may_mark(user),
    }
