from __future__ import annotations

from typing import Any

from django import template
from django.utils import timezone

from fleet.models import Device, DeviceCredential

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
def get_item(mapping: dict[str, Any], key: str) -> Any:
    return mapping.get(key)


@register.filter
def usable_credentials(device: Device) -> list[DeviceCredential]:
    """Tokens that work now (public prefixes only): not revoked, not past a rotation's overlap."""
    now = timezone.now()
    return [c for c in device.credentials.all() if c.is_valid_at(now)]
