"""SLA terms and clocks of tickets.

Terms come from the contract covering the ticket's asset when the ticket was opened, else the
ticket's own contract, else the customer's active contract, else `SUPPORT_DEFAULT_SLA`. The
first-response clock runs from opening until the first public reply by provider staff; the
resolution clock runs from opening until resolved and stands still while the ticket waits for
the customer (`pending_customer`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q

from billing.models import Contract, ContractStatus
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
