"""The asset page's health panel reads its own data (so the asset view need not know about
health rules): the asset arrives already scoped by the page."""

from __future__ import annotations

from django import template

from fleet.health.selectors import HealthView, asset_health
from fleet.models import Asset

register = template.Library()

RISK_BADGES = {"ok": "badge-ok", "watch": "badge-warn", "at_risk": "badge-warn", "critical": "badge-bad"}


@register.simple_tag
def asset_health_view(asset: Asset) -> HealthView:
    """The asset's score, risk and active predictions (two queries)."""
    return asset_health(asset=asset)


@register.filter
def risk_badge(risk: str) -> str:
    return RISK_BADGES.get(risk, "badge-muted")
