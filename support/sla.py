"""SLA terms and clocks of tickets.

Terms come from the contract covering the ticket's asset when the ticket was opened, else the
ticket's own contract, else the customer's active contract, else `SUPPORT_DEFAULT_SLA`. The
first-response clock runs from opening until the first public reply by provider staff; the
resolution clock runs from opening until resolved and stands still while the ticket waits for
the customer (`pending_customer`) and while the ticket's asset is in a maintenance window
(`maintenance_paused_seconds`, settled by `settle_maintenance` on every status change and
sweep: the window time between opening and now, less the time it was also waiting for the
customer right now, so one stretch never pauses the clock twice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q

from billing.models import Contract, ContractStatus
from fleet.maintenance import windows_for_assets
from support.models import SlaState, Ticket


@dataclass(frozen=True)
class Terms:
    first_response_minutes: int
    resolution_minutes: int
    source: str  # the contract number, or "default"


def _covering(ticket: Ticket, at: datetime) -> Contract | None:
    live = Contract.objects.filter(status=ContractStatus.ACTIVE, customer_id=ticket.customer_id)
    if ticket.asset_id is not None:
        covering = (
            live.filter(coverages__asset_id=ticket.asset_id, coverages__covered_from__lte=at)
            .filter(Q(coverages__covered_until__isnull=True) | Q(coverages__covered_until__gt=at))
            .first()
        )
        if covering is not None:
            return covering
    if ticket.contract_id is not None:
        return Contract.objects.filter(pk=ticket.contract_id).first()
    return live.order_by("start_date").first()


def terms_for(ticket: Ticket, at: datetime) -> Terms:
    contract = _covering(ticket, at)
    defaults = settings.SUPPORT_DEFAULT_SLA
    if contract is not None:
        first = contract.first_response_minutes.get(ticket.priority)
        resolve = contract.resolution_minutes.get(ticket.priority)
        if first and resolve:
            return Terms(int(first), int(resolve), contract.number)
    return Terms(
        defaults["first_response"][ticket.priority], defaults["resolution"][ticket.priority], "default"
    )


def apply_terms(ticket: Ticket, at: datetime) -> None:
    terms = terms_for(ticket, at)
    ticket.first_response_minutes = terms.first_response_minutes
    ticket.resolution_minutes = terms.resolution_minutes
    ticket.sla_source = terms.source
    ticket.first_response_due = ticket.created_at + timedelta(minutes=terms.first_response_minutes)


def assess(ticket: Ticket, now: datetime) -> tuple[bool, bool, str]:
    """(first response breached, resolution breached, SLA state) of a ticket at `now`."""
    if not ticket.is_unresolved:
        return ticket.first_response_breached, ticket.resolution_breached, SlaState.NONE
    first_breached = ticket.first_response_breached or (
        ticket.first_responded_at is None and now > ticket.first_response_due
    )
    resolution_breached = ticket.resolution_breached or now > ticket.resolution_due_at(now)
    if first_breached or resolution_breached:
        return first_breached, resolution_breached, SlaState.BREACHED
    share = settings.SUPPORT_AT_RISK_SHARE
    at_risk = False
    if ticket.first_responded_at is None:
        left = (ticket.first_response_due - now).total_seconds()
        at_risk = left < share * ticket.first_response_minutes * 60
    if ticket.pending_since is None:
        left = (ticket.resolution_due_at(now) - now).total_seconds()
        at_risk = at_risk or left < share * ticket.resolution_minutes * 60
    return False, False, SlaState.AT_RISK if at_risk else SlaState.ON_TRACK


def maintenance_overlap(spans: Sequence[tuple[datetime, datetime]], start: datetime, end: datetime) -> int:
    """Whole seconds of the merged `spans` inside [start, end)."""
    total = timedelta()
    for began, ended in spans:
        lo, hi = max(began, start), min(ended, end)
        if hi > lo:
            total += hi - lo
    return int(total.total_seconds())


def settle_maintenance(tickets: Sequence[Ticket], now: datetime) -> None:
    """Set `maintenance_paused_seconds` of unresolved tickets about an asset to the maintenance
    time of that asset between the ticket's opening and `now` (one query for all of them).
    Recomputed from the windows each time, so a window moved or cancelled later corrects it;
    a resolved ticket keeps what it had when it was resolved. Not saved here."""
    about = [t for t in tickets if t.asset_id is not None and t.is_unresolved and t.created_at < now]
    if not about:
        return
    spans = windows_for_assets({t.asset_id for t in about}, min(t.created_at for t in about), now)
    for ticket in about:
        paused = maintenance_overlap(spans[ticket.asset_id], ticket.created_at, now)
        if ticket.pending_since is not None:  # already paused as waiting for the customer
            paused -= maintenance_overlap(spans[ticket.asset_id], ticket.pending_since, now)
        ticket.maintenance_paused_seconds = max(paused, 0)
