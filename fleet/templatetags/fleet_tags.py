from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from fleet.models import Asset, Device, DeviceCredential

register = template.Library()

STATUS_BADGE = {
    "online": "badge-ok",
    "warning": "badge-warn",
    "fault": "badge-bad",
    "offline": "badge-bad",
    "never_seen": "badge-muted",
    "decommissioned": "badge-muted",
}


SEVERITY_BADGE = {"critical": "badge-bad", "warning": "badge-warn"}


@register.filter
def severity_badge(severity: str) -> str:
    return SEVERITY_BADGE.get(severity, "badge-muted")


@register.filter
def status_badge(status: str) -> str:
    return STATUS_BADGE.get(status, "badge-muted")


@register.filter
def gauge_spec(asset: Asset, limit: int = 3) -> str:
    """The first gauges of the asset's model as JSON [[code, label, unit], …] for live updates."""
    import json

    gauges = [[m.code, m.label, m.unit] for m in asset.model.metrics.all() if m.kind == "gauge"][:limit]
    return json.dumps(gauges)


@register.filter
def key_values(asset: Asset, limit: int = 3) -> list[dict[str, Any]]:
    """The first gauges of the asset's model with their latest value and unit."""
    shown = []
    for metric in asset.model.metrics.all():
        if metric.kind != "gauge" or metric.code not in asset.last_values:
            continue
        shown.append(
            {
                "code": metric.code,
                "label": metric.label,
                "unit": metric.unit,
                "value": asset.last_values[metric.code],
            }
        )
        if len(shown) >= limit:
            break
    return shown


@register.filter
def get_item(mapping: dict[str, Any], key: str) -> Any:
    return mapping.get(key)


@register.filter
def usable_credentials(device: Device) -> list[DeviceCredential]:
    """Tokens that work now (public prefixes only): not revoked, not past a rotation's overlap."""
    now = timezone.now()
    return [c for c in device.credentials.all() if c.is_valid_at(now)]
