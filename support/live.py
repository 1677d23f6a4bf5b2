"""The desk's live messages (docs/support.md, "Live updates"): after each timeline event and each
SLA change the sweep finds, the ticket's state as its pages show it, so an open queue or ticket
page applies it without a reload. Sent after commit; a public event to the ticket's customer and
to staff, an internal one to staff only. No comment text ever travels: pages fetch the timeline,
which the server renders for the reader."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.utils import timezone

from portal import live
from portal.models import User
from support import wording
from support.models import EventKind, Status, Ticket, TicketEvent

log = logging.getLogger(__name__)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _name(user: User | None) -> str:
    return (user.full_name or user.email) if user is not None else ""


def ticket_state(ticket: Ticket, now: datetime | None = None) -> dict[str, Any]:
    """What the queue row and the ticket page's tiles show of `ticket` (times in UTC, ISO 8601:
    the browser writes them in the reader's zone)."""
    now = now or timezone.now()
    running = ticket.is_unresolved and ticket.status != Status.PENDING_CUSTOMER
    return {
        "ticket": str(ticket.pk),
        "number": ticket.number,
        "status": ticket.status,
        "status_label": ticket.get_status_display(),
        "priority": ticket.priority,
        "sla_state": ticket.sla_state,
        "assignee": _name(ticket.assignee),
        "first_responded_at": _iso(ticket.first_responded_at),
        "first_response_due": _iso(ticket.first_response_due),
        "first_response_breached": ticket.first_response_breached,
        "resolved_at": _iso(ticket.resolved_at),
        "resolution_due": _iso(ticket.resolution_due_at(now)) if running else None,
        "resolution_breached": ticket.resolution_breached,
        "due_at": _iso(ticket.due_at),
        # The terms as the page words them (no zone or locale in them: the same for every reader).
        "terms": wording.terms(ticket),
        "terms_source": wording.terms_source(ticket),
    }


def announce_event(event_id: int) -> None:
    """After commit: `ticket.comment` or `ticket.updated` with the ticket's state (internal
    events to staff only)."""
    event = TicketEvent.objects.select_related("ticket", "ticket__assignee").filter(pk=event_id).first()
    if event is None:
        return
    ticket = event.ticket
    kind = "ticket.comment" if event.kind == EventKind.COMMENT else "ticket.updated"
    payload = {"type": kind, **ticket_state(ticket), "event": event.pk}
    try:
        if event.internal:
            live.publish(live.STAFF_GROUP, {**payload, "internal": True})
        else:
            live.publish_for_customer(ticket.customer_id, payload)
    except Exception:
        log.warning("ticket %s: live event not published", ticket.number, exc_info=True)


def announce_sla(ticket: Ticket, now: datetime) -> None:
    """`ticket.sla`: the sweep changed the ticket's SLA flags or moved its due time (the sweep
    reads its tickets with their assignee)."""
    try:
        live.publish_for_customer(ticket.customer_id, {"type": "ticket.sla", **ticket_state(ticket, now)})
    except Exception:
        log.warning("ticket %s: SLA event not published", ticket.number, exc_info=True)
