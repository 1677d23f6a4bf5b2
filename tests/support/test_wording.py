"""What the desk writes to people: alarm-ticket subjects, action-named status buttons, and
times in the reader's zone (flash messages, e-mails, the alarm note)."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from fleet import alarms
from fleet.models import Alarm, AlarmRule, Asset
from portal import formatting
from portal.models import Customer, User
from support import services
from support.models import Status, Ticket
from tests.conftest import client_for
from tests.fleet_fixtures import Installed
from tests.outbox import run_outbox
from tests.support.conftest import raise_alarm

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def _page_time(value: datetime, zone: zoneinfo.ZoneInfo, locale: str = "en") -> str:
    """What the pages write (`|when`), in `zone` and `locale` (the cast's is en)."""
    with timezone.override(zone):
        return formatting.when(value, locale)


# --- alarm-ticket subjects -------------------------------------------------------------------


@override_settings(SUPPORT_ALARM_TICKETS={"device_fault": "P2", "offline": "P2"})
@pytest.mark.parametrize(
    ("kind", "key", "message", "subject"),
    [
        ("device_fault", alarms.DEVICE_FAULT, "{name} reports a fault (E42)", "{name} reports a fault (E42)"),
        ("offline", alarms.OFFLINE, "{name} has sent nothing since 2026-12-07 11:57", "{name} is offline"),
    ],
)
def test_an_alarm_ticket_subject_names_the_machine_once(
    fleet_a: Installed, viewer_a: User, kind: str, key: str, message: str, subject: str
) -> None:
    name = fleet_a.asset.name
    alarms.alarm_raise(
        asset=fleet_a.asset, key=key, kind=kind, severity="critical", message=message.format(name=name),
        at=datetime(2026, 12, 7, 11, 57, tzinfo=UTC),
    )  # fmt: skip
    run_outbox()
    ticket = Ticket.objects.get()
    assert ticket.subject == subject.format(name=name)
    row = client_for(viewer_a).get("/support/tickets/").content.decode()
    cell = re.search(r"<td>([^<]*" + re.escape(name) + r".*?)</td>", row, re.S)
    assert cell is not None
    assert cell.group(1).count(name) == 1, cell.group(1)  # the queue adds no "· <machine>" either


def test_a_rule_alarm_ticket_names_the_machine_then_the_rule(fleet_a: Installed, hot_rule: AlarmRule) -> None:
    raise_alarm(fleet_a, hot_rule)
    run_outbox()
    assert Ticket.objects.get().subject == f"{fleet_a.asset.name}: Oil temperature 97 °C"


def test_the_alarm_note_is_written_in_the_customers_zone(fleet_a: Installed, hot_rule: AlarmRule) -> None:
    raise_alarm(fleet_a, hot_rule, at=datetime(2026, 12, 7, 11, 57, tzinfo=UTC))
    run_outbox()
    alarm = Alarm.objects.get()
    assert alarm.customer.time_zone == "Europe/Berlin"
    assert Ticket.objects.get().description.endswith("(critical, 2026-12-07 12:57 CET).")


@override_settings(SUPPORT_ALARM_TICKETS={"offline": "P2"})
def test_an_offline_alarm_ticket_gives_its_last_heartbeat_in_the_customers_zone(
    fleet_a: Installed, fleet_b: Installed
) -> None:
    fleet_b.asset.customer.time_zone = "America/New_York"
    fleet_b.asset.customer.save(update_fields=["time_zone"])
    both = Asset.objects.filter(pk__in=[fleet_a.asset.pk, fleet_b.asset.pk])
    both.update(status="online", last_seen_at=datetime(2026, 12, 7, 11, 57, tzinfo=UTC))
    alarms.offline_sweep(now=datetime(2026, 12, 7, 13, 0, tzinfo=UTC))
    run_outbox()
    mine = Ticket.objects.get(asset=fleet_a.asset)  # customer A: Europe/Berlin
    assert mine.description == (
        f"Alarm raised: {fleet_a.asset.name} has sent nothing since 2026-12-07 12:57 CET"
        " (critical, 2026-12-07 14:00 CET)."
    )
    theirs = Ticket.objects.get(asset=fleet_b.asset)
    assert theirs.description == (
        f"Alarm raised: {fleet_b.asset.name} has sent nothing since 2026-12-07 06:57 EST"
        " (critical, 2026-12-07 08:00 EST)."
    )
    assert mine.subject == f"{fleet_a.asset.name} is offline"  # no time in the subject


# --- status buttons --------------------------------------------------------------------------


def _buttons(user: User, ticket: Ticket) -> list[str]:
    html = client_for(user).get(f"/support/tickets/{ticket.pk}/").content.decode()
    return re.findall(r'data-transition="[a-z_]+">([^<]+)</button>', html)


def test_status_buttons_are_named_after_what_they_do(
    customer_a: Customer, viewer_a: User, support: User
) -> None:
    ticket = services.ticket_open(actor=viewer_a, customer=customer_a, subject="Leak", description="Oil")
    assert _buttons(support, ticket) == ["Start work"]
    services.ticket_transition(actor=support, ticket=ticket, to=Status.OPEN)
    assert _buttons(support, ticket) == ["Wait for customer", "Resolve"]
    services.ticket_transition(actor=support, ticket=ticket, to=Status.PENDING_CUSTOMER)
    assert _buttons(support, ticket) == ["Resume work"]
    services.ticket_transition(actor=support, ticket=ticket, to=Status.OPEN)
    services.ticket_transition(actor=support, ticket=ticket, to=Status.RESOLVED)
    assert _buttons(support, ticket) == ["Close", "Reopen"]
    assert _buttons(viewer_a, ticket) == ["Close", "Reopen"]  # the customer's two actions
    services.ticket_transition(actor=viewer_a, ticket=ticket, to=Status.CLOSED)
    assert _buttons(support, ticket) == []


# --- times in the reader's zone --------------------------------------------------------------


def test_the_confirmation_gives_the_reply_time_in_the_users_zone(viewer_a: User) -> None:
    assert viewer_a.display_time_zone == "Europe/Berlin"
    response = client_for(viewer_a).post(
        "/support/tickets/new/",
        {"subject": "Noise", "description": "Rattles", "category": "breakdown", "priority": "P2"},
        follow=True,
    )
    html = response.content.decode()
    due = Ticket.objects.get().first_response_due
    assert f"We reply by {_page_time(due, BERLIN)} at the latest." in html
    assert "UTC" not in html.split("We reply by")[1].split("</")[0]
    assert f"by {_page_time(due, BERLIN)}" in html  # the first-response tile says the same


def test_e_mails_give_times_in_the_recipients_zone(
    customer_a: Customer, viewer_a: User, support: User
) -> None:
    viewer_a.locale = "de-DE"  # in Berlin, reading German
    viewer_a.save(update_fields=["locale"])
    ticket = services.ticket_open(actor=viewer_a, customer=customer_a, subject="Leak", description="Oil")
    services.ticket_assign(actor=support, ticket=ticket, assignee=support)
    services.ticket_comment(actor=viewer_a, ticket=ticket, body="Still dripping")
    event = ticket.events.get(body="Still dripping")
    run_outbox()
    (to_agent,) = [m for m in mail.outbox if m.to == [support.email] and "Still dripping" in m.body]
    assert f"Written: {_page_time(event.created_at, zoneinfo.ZoneInfo('UTC'))} (UTC)" in to_agent.body
    mail.outbox.clear()

    reply = services.ticket_comment(actor=support, ticket=ticket, body="On our way")
    run_outbox()
    (to_customer,) = [m for m in mail.outbox if m.to == [viewer_a.email] and "On our way" in m.body]
    written = _page_time(reply.created_at, BERLIN, "de-DE")
    assert written != _page_time(reply.created_at, BERLIN)  # German: "7. Dez. 2026, 15:57"
    assert f"Written: {written} (Europe/Berlin)" in to_customer.body
    assert "UTC" not in to_customer.body
