"""How the desk words things for people: status changes named as the actions they are, and
times in the reader's time zone (docs/support.md, "What the desk writes")."""

from __future__ import annotations

import zoneinfo
from datetime import datetime

from django.utils import dateformat, timezone

from support.models import Status

# A button says what it does to the ticket, not the state it leaves it in.
ACTIONS: dict[tuple[str, str], str] = {
    (Status.NEW, Status.OPEN): "Start work",
    (Status.OPEN, Status.PENDING_CUSTOMER): "Wait for customer",
    (Status.OPEN, Status.RESOLVED): "Resolve",
    (Status.PENDING_CUSTOMER, Status.OPEN): "Resume work",
    (Status.RESOLVED, Status.OPEN): "Reopen",
    (Status.RESOLVED, Status.CLOSED): "Close",
}


def action_label(before: str, to: str) -> str:
    """The button that moves a ticket from `before` to `to`."""
    return ACTIONS.get((before, to), Status(to).label)


def zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone called `name`; UTC for one this tzdata does not know (as the middleware does)."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def when(value: datetime, tz: zoneinfo.ZoneInfo | None = None) -> str:
    """A moment as the ticket pages write it ("7 Dec, 12:57"), in `tz` or the active zone (the
    reader's: the middleware activates it for a request, an e-mail overrides it)."""
    return dateformat.format(timezone.localtime(value, tz), "j M, H:i")


def when_zoned(value: datetime, tz: zoneinfo.ZoneInfo) -> str:
    """A moment written into text that readers in other zones see too (a ticket's timeline):
    the date, the time and the zone's abbreviation ("2026-12-07 12:57 CET")."""
    return f"{value.astimezone(tz):%Y-%m-%d %H:%M %Z}"
