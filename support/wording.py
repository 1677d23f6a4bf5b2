"""How the desk words things for people: status changes named as the actions they are
(docs/support.md, "Statuses and who moves them"), and the zone of times written into text that
readers in several zones see (docs/support.md, "Alarm tickets"). Times for one reader are
`portal.formatting.when` in that reader's zone and locale."""

from __future__ import annotations

import zoneinfo
from datetime import datetime

from portal.templatetags.portal_tags import minutes
from support.models import Status, Ticket

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


def when_zoned(value: datetime, tz: zoneinfo.ZoneInfo) -> str:
    """A moment written into text that readers in other zones see too (a ticket's timeline):
    the date, the time and the zone's abbreviation ("2026-12-07 12:57 CET")."""
    return f"{value.astimezone(tz):%Y-%m-%d %H:%M %Z}"


def terms(ticket: Ticket) -> str:
    """The ticket's SLA terms in words: "4 h to respond, 1 d to resolve"."""
    respond, resolve = minutes(ticket.first_response_minutes), minutes(ticket.resolution_minutes)
    return f"{respond} to respond, {resolve} to resolve"


def terms_source(ticket: Ticket) -> str:
    """Where the terms come from: "(default terms)" or "(contract C-2026-0001)"."""
    return "(default terms)" if ticket.sla_source == "default" else f"(contract {ticket.sla_source})"
