"""The asset page's thresholds panel (fleet/templates/fleet/panels/_thresholds.html): its rows
and who may tune them, read here so the panel is one include line in the asset page."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import template

from fleet import thresholds
from fleet.models import Asset
from portal import formatting
from portal.roles import Capability, can

register = template.Library()


@register.simple_tag
def asset_threshold_panel(asset: Asset, user: Any) -> dict[str, Any]:
    """{"rows": [ThresholdRow], "may_tune": bool}: three queries, whoever asks."""
    return {
        "rows": thresholds.threshold_rows(asset=asset),
        "may_tune": can(user, Capability.TUNE_THRESHOLDS),
    }


@register.filter
def threshold(value: Decimal | None, unit: str = "") -> str:
    """A threshold with its unit and every decimal it has (at least the unit's): a limit shown
    rounded would not be the limit. {{ row.effective_threshold|threshold:row.unit }} → 85.5 °C."""
    if value is None:
        return ""
    exponent = value.normalize().as_tuple().exponent
    decimals = max(
        formatting.decimals_for(unit), -exponent if isinstance(exponent, int) and exponent < 0 else 0
    )
    text = formatting.number(value, decimals)
    return f"{text}\u00a0{unit}" if unit else text


@register.filter
def plain_decimal(value: Decimal | None) -> str:
    """A Decimal for an input's value attribute: no grouping, no trailing zeros, no exponent."""
    if value is None:
        return ""
    return format(value.normalize(), "f")
