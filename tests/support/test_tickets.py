"""Tickets: the state machine, who may move them, SLA clocks and breaches."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError

from billing.models import Contract
from portal.models import Customer, User
from support import services
from support.models import TRANSITIONS, SlaState, Status, Ticket
from tests.billing_fixtures import contract_for
from tests.fleet_fixtures import Installed

T0 = datetime(2026, 10, 5, 8, 0, tzinfo=UTC)
ALL = [s.value for s in Status]


def open_ticket(customer: Customer, actor: User | None = None, **extra: object) -> Ticket:
    return services.ticket_open(
        actor=actor, customer=customer, subject="Compressor trips", description="Trips every hour.", at=T0,
        **extra,
    )  # fmt: skip


def walk_to(ticket: Ticket, status: str, actor: User) -> Ticket:
    """Bring a ticket into `status` along legal transitions."""
    path = {
        Status.NEW: [],
        Status.OPEN: [Status.OPEN],
        Status.PENDING_CUSTOMER: [Status.OPEN, Status.PENDING_CUSTOMER],
        Status.RESOLVED: [Status.OPEN, Status.RESOLVED],
        Status.CLOSED: [Status.OPEN, Status.RESOLVED, Status.CLOSED],
    }[Status(status)]
    for step in path:
        ticket = services.ticket_transition(actor=actor, ticket=ticket, to=step)
    return ticket


@pytest.mark.parametrize("start", ALL)
@pytest.mark.parametrize("to", ALL)
def test_every_transition_is_legal_or_refused_clearly(
    customer_a: Customer, support: User, start: str, to: str
) -> None:
    ticket = walk_to(open_ticket(customer_a), start, support)
    if to in TRANSITIONS[start]:
        assert services.ticket_transition(actor=support, ticket=ticket, to=to).status == to
    else:
        with pytest.raises(ValidationError, match="cannot become"):
            services.ticket_transition(actor=support, ticket=ticket, to=to)
        assert Ticket.objects.get(pk=ticket.pk).status == start


def test_customers_may_only_reopen_or_close_a_resolved_ticket(
    customer_a: Customer, viewer_a: User, support: User
) -> None:
    ticket = open_ticket(customer_a, viewer_a)
    with pytest.raises(PermissionDenied):
        services.ticket_transition(actor=viewer_a, ticket=ticket, to=Status.OPEN)
    walk_to(ticket, Status.RESOLVED, support)
    assert services.ticket_transition(actor=viewer_a, ticket=ticket, to=Status.OPEN).status == Status.OPEN


def test_a_customer_reply_takes_a_waiting_ticket_back_to_open(
    customer_a: Customer, viewer_a: User, support: User
) -> None:
    ticket = walk_to(open_ticket(customer_a, viewer_a), Status.PENDING_CUSTOMER, support)
    services.ticket_comment(actor=viewer_a, ticket=ticket, body="Here are the readings.")
    assert Ticket.objects.get(pk=ticket.pk).status == Status.OPEN


def test_customers_cannot_write_internal_notes_or_on_others_tickets(
    customer_a: Customer, customer_b: Customer, viewer_a: User
) -> None:
    mine, theirs = open_ticket(customer_a), open_ticket(customer_b)
    with pytest.raises(PermissionDenied):
        services.ticket_comment(actor=viewer_a, ticket=mine, body="psst", internal=True)
    with pytest.raises(PermissionDenied):
        services.ticket_comment(actor=viewer_a, ticket=theirs, body="hello")
    with pytest.raises(PermissionDenied):
        services.ticket_open(actor=viewer_a, customer=customer_b, subject="x", description="y")


# --- SLA -------------------------------------------------------------------------------------


@pytest.fixture
def covered(customer_a: Customer, plan: object, fleet_a: Installed) -> Contract:
    return contract_for(customer_a, plan, fleet_a.asset, date(2026, 1, 1))


@pytest.mark.parametrize(
    ("priority", "first", "resolve"),
    [("P1", 60, 480), ("P2", 240, 1440), ("P3", 1440, 4320), ("P4", 2880, 10080)],
)
def test_due_times_come_from_the_contract_covering_the_asset(
    covered: Contract, fleet_a: Installed, customer_a: Customer, priority: str, first: int, resolve: int
) -> None:
    ticket = open_ticket(customer_a, asset=fleet_a.asset, priority=priority)
    assert ticket.sla_source == covered.number
    assert ticket.first_response_due == T0 + timedelta(minutes=first)
    assert ticket.resolution_due_at(T0) == T0 + timedelta(minutes=resolve)
    assert ticket.contract == covered


@pytest.mark.parametrize(("priority", "first", "resolve"), [("P1", 240, 1440), ("P4", 2880, 14400)])
def test_without_a_contract_the_documented_default_applies(
    customer_b: Customer, priority: str, first: int, resolve: int
) -> None:
    ticket = open_ticket(customer_b, priority=priority)
    assert ticket.sla_source == "default"
    assert (ticket.first_response_minutes, ticket.resolution_minutes) == (first, resolve)


def test_waiting_for_the_customer_pauses_the_resolution_clock(
    covered: Contract, fleet_a: Installed, support: User
) -> None:
    ticket = open_ticket(covered.customer, asset=fleet_a.asset, priority="P1")  # resolve within 480 min
    with time_machine.travel(T0 + timedelta(minutes=30), tick=False):
        services.ticket_comment(actor=support, ticket=ticket, body="Please send the error code.")
        services.ticket_transition(actor=support, ticket=ticket, to=Status.PENDING_CUSTOMER)
    with time_machine.travel(T0 + timedelta(minutes=330), tick=False):  # five hours of waiting
        ticket = services.ticket_transition(actor=support, ticket=ticket, to=Status.OPEN)
    assert ticket.paused_seconds == 300 * 60
    assert ticket.resolution_due_at(T0) == T0 + timedelta(minutes=480 + 300)
    # Without the pause it would have breached at 8 h; at 12 h it is only about to (an hour left).
    services.sla_sweep(now=T0 + timedelta(hours=12))
    ticket.refresh_from_db()
    assert (ticket.resolution_breached, ticket.sla_state) == (False, SlaState.AT_RISK)
    services.sla_sweep(now=T0 + timedelta(hours=13, minutes=1))
    assert Ticket.objects.get(pk=ticket.pk).resolution_breached


def test_first_response_is_the_first_public_staff_reply(
    covered: Contract, fleet_a: Installed, support: User, viewer_a: User
) -> None:
    ticket = open_ticket(
        covered.customer, viewer_a, asset=fleet_a.asset, priority="P1"
    )  # respond within 60 min
    with time_machine.travel(T0 + timedelta(minutes=10), tick=False):
        services.ticket_comment(actor=viewer_a, ticket=ticket, body="Any news?")
        services.ticket_comment(actor=support, ticket=ticket, body="Looking at it", internal=True)
    assert Ticket.objects.get(pk=ticket.pk).first_responded_at is None
    with time_machine.travel(T0 + timedelta(minutes=45), tick=False):
        services.ticket_comment(actor=support, ticket=ticket, body="A technician is on the way.")
    ticket.refresh_from_db()
    assert ticket.first_responded_at == T0 + timedelta(minutes=45)
    assert not ticket.first_response_breached
    assert ticket.status == Status.OPEN


def test_breaches_and_near_breaches_are_flagged_by_the_sweep(covered: Contract, fleet_a: Installed) -> None:
    ticket = open_ticket(covered.customer, asset=fleet_a.asset, priority="P1")  # 60 min / 480 min
    assert services.sla_sweep(now=T0 + timedelta(minutes=10)) == 0
    assert services.sla_sweep(now=T0 + timedelta(minutes=50)) == 1  # under 20 % of the hour left
    assert Ticket.objects.get(pk=ticket.pk).sla_state == SlaState.AT_RISK
    assert services.sla_sweep(now=T0 + timedelta(minutes=61)) == 1
    ticket.refresh_from_db()
    assert (ticket.first_response_breached, ticket.resolution_breached, ticket.sla_state) == (
        True, False, SlaState.BREACHED,
    )  # fmt: skip


def test_a_late_first_reply_is_recorded_as_breached(
    covered: Contract, fleet_a: Installed, support: User
) -> None:
    ticket = open_ticket(covered.customer, asset=fleet_a.asset, priority="P1")
    with time_machine.travel(T0 + timedelta(minutes=90), tick=False):
        services.ticket_comment(actor=support, ticket=ticket, body="Sorry for the wait.")
    assert Ticket.objects.get(pk=ticket.pk).first_response_breached


def test_resolving_late_records_the_breach_at_once(
    covered: Contract, fleet_a: Installed, support: User
) -> None:
    ticket = open_ticket(covered.customer, asset=fleet_a.asset, priority="P1")  # resolve within 480 min
    with time_machine.travel(T0 + timedelta(minutes=20), tick=False):
        services.ticket_comment(actor=support, ticket=ticket, body="On it.")
    with time_machine.travel(T0 + timedelta(minutes=500), tick=False):
        ticket = services.ticket_transition(actor=support, ticket=ticket, to=Status.RESOLVED)
    assert (ticket.resolution_breached, ticket.first_response_breached) == (True, False)


def test_resolved_tickets_close_themselves_after_the_configured_days(
    customer_a: Customer, support: User, settings: object
) -> None:
    from support.models import EventKind

    settings.SUPPORT_AUTO_CLOSE_DAYS = 7
    with time_machine.travel(T0, tick=False):
        old = walk_to(open_ticket(customer_a), Status.RESOLVED, support)
        reopened = walk_to(open_ticket(customer_a), Status.RESOLVED, support)
    with time_machine.travel(T0 + timedelta(days=5), tick=False):
        recent = walk_to(open_ticket(customer_a), Status.RESOLVED, support)
        services.ticket_transition(actor=support, ticket=reopened, to=Status.OPEN)

    assert services.auto_close(now=T0 + timedelta(days=6, hours=23)) == 0
    assert services.auto_close(now=T0 + timedelta(days=7, hours=1)) == 1
    old.refresh_from_db()
    assert (old.status, old.closed_at) == (Status.CLOSED, T0 + timedelta(days=7, hours=1))
    last = old.events.order_by("created_at", "pk").last()
    assert last is not None
    assert (last.kind, last.author, last.to_status) == (EventKind.STATUS, None, Status.CLOSED)
    assert last.body == "Closed automatically 7 days after it was resolved."
    assert Ticket.objects.get(pk=reopened.pk).status == Status.OPEN
    assert Ticket.objects.get(pk=recent.pk).status == Status.RESOLVED
    assert services.auto_close(now=T0 + timedelta(days=13)) == 1  # `recent`, 8 days on
    assert services.auto_close(now=T0 + timedelta(days=30)) == 0  # nothing left; closed is final

    settings.SUPPORT_AUTO_CLOSE_DAYS = 0
    with time_machine.travel(T0, tick=False):
        kept = walk_to(open_ticket(customer_a), Status.RESOLVED, support)
    assert services.auto_close(now=T0 + timedelta(days=365)) == 0
    assert Ticket.objects.get(pk=kept.pk).status == Status.RESOLVED
