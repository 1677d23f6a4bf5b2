"""E-mail about maintenance windows to the window's customer's users, each in their own zone
and locale, through the outbox after the write's commit (docs/maintenance.md, "Telling the
customer"). The writes that enqueue it are `fleet.windows`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from celery import shared_task
from django.core.mail import send_mail
from django.template.loader import render_to_string

from fleet.models import MaintenanceWindow, WindowStatus
from portal import formatting
from portal.links import portal_url
from portal.models import User
from portal.roles import Capability, can


def recipients(window: MaintenanceWindow) -> list[User]:
    """The window's own customer's active users who may see the fleet — nobody else."""
    people = User.objects.filter(customer_id=window.customer_id, is_active=True).select_related("customer")
    return sorted((p for p in people if can(p, Capability.VIEW_FLEET) and p.email), key=lambda p: p.email)


def _when_iso(value: str) -> str:
    return formatting.when(datetime.fromisoformat(value)) if value else ""


def notify(*, window_id: str, change: str, previous_starts_at: str = "", previous_ends_at: str = "") -> int:
    """E-mail each of the window's customer's users, in their own zone and locale. Returns how
    many were sent. At least once (the outbox): a redelivery sends again."""
    window = (
        MaintenanceWindow.objects.select_related("customer", "site")
        .prefetch_related("assets")
        .filter(pk=window_id)
        .first()
    )
    if window is None:
        return 0
    if change in ("planned", "moved") and window.status != WindowStatus.PLANNED:
        return 0  # cancelled (or never confirmed) before the mail went out: nothing to announce
    link = portal_url("maintenance_calendar")
    subjects = {
        "planned": "Maintenance planned: {title}",
        "moved": "Maintenance moved: {title}",
        "cancelled": "Maintenance cancelled: {title}",
    }
    sent = 0
    for person in recipients(window):
        # Times and figures as the recipient reads them on the pages: their zone and locale.
        with formatting.reader(locale=person.display_locale, time_zone=person.display_time_zone) as zone:
            context: dict[str, Any] = {
                "person": person,
                "window": window,
                "change": change,
                "link": link,
                "zone": zone.key,
                "starts": formatting.when(window.starts_at),
                "ends": formatting.when(window.ends_at),
                "previous_starts": _when_iso(previous_starts_at),
                "previous_ends": _when_iso(previous_ends_at),
                "scope": scope_label(window),
            }
            body = render_to_string("fleet/email/window.txt", context)
        send_mail(
            subject=subjects.get(change, "Maintenance: {title}").format(title=window.title),
            message=body,
            from_email=None,
            recipient_list=[person.email],
        )
        sent += 1
    return sent


def scope_label(window: MaintenanceWindow) -> str:
    """What the window covers, in words (uses prefetched assets where there are)."""
    listed = list(window.assets.all())
    if listed:
        return ", ".join(a.name for a in listed)
    if window.site_id is not None and window.site is not None:
        return f"every machine at {window.site.name}"
    return "every machine"


@shared_task(name="fleet.window_notify", acks_late=True)
def window_notify(
    window_id: str, change: str, previous_starts_at: str = "", previous_ends_at: str = ""
) -> int:
    return notify(
        window_id=window_id,
        change=change,
        previous_starts_at=previous_starts_at,
        previous_ends_at=previous_ends_at,
    )
