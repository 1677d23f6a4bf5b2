"""The desk around tickets: alarm tickets, disputes, internal notes by every channel, attachments."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.core import mail
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from billing.models import CreditNote, Invoice
from fleet import alarms
from fleet.models import Alarm, AlarmRule
from portal.asgi import application
from portal.models import Customer, User
from support import services
from support.models import Category, Source, Status, Ticket, TicketEvent
from support.notifications import notify
from tests.conftest import client_for
from tests.fleet_fixtures import Installed
from tests.integration import at_once
from tests.outbox import run_outbox
from tests.support.conftest import raise_alarm, socket_headers

JSON = "application/json"


def test_an_alarm_opens_one_ticket_and_a_re_raise_comments_on_it(
    fleet_a: Installed, hot_rule: AlarmRule
) -> None:
    first = raise_alarm(fleet_a, hot_rule)
    assert not Ticket.objects.exists()  # not in the process that raised it: in a task
    assert run_outbox() == ["support.on_alarm_raised", "support.ticket_notify"]
    ticket = Ticket.objects.get()
    assert (ticket.source, ticket.priority, ticket.category) == (Source.ALARM, "P1", Category.BREAKDOWN)
    assert ticket.first_response_due == ticket.created_at + timedelta(minutes=240)  # default P1: no contract

    alarms.alarm_clear_key(asset=fleet_a.asset, key=alarms.rule_key(hot_rule), reason="back to normal")
    run_outbox()
    raise_alarm(fleet_a, hot_rule)
    run_outbox()
    assert Ticket.objects.count() == 1
    bodies = list(ticket.events.filter(kind="comment").values_list("body", flat=True))
    assert bodies[0].startswith("Alarm cleared (back to normal)")
    assert bodies[1].startswith("Alarm raised: Oil temperature 97")
    assert first is not None


def test_a_recently_resolved_alarm_ticket_is_reopened_an_old_one_is_not(
    fleet_a: Installed, hot_rule: AlarmRule, support: User
) -> None:
    key = alarms.rule_key(hot_rule)
    raise_alarm(fleet_a, hot_rule)
    alarms.alarm_clear_key(asset=fleet_a.asset, key=key, reason="fixed")
    run_outbox()
    ticket = Ticket.objects.get()
    services.ticket_transition(actor=support, ticket=ticket, to=Status.OPEN)
    services.ticket_transition(actor=support, ticket=ticket, to=Status.RESOLVED)
    raise_alarm(fleet_a, hot_rule)
    run_outbox()
    ticket.refresh_from_db()
    assert (Ticket.objects.count(), ticket.status) == (1, Status.OPEN)

    alarms.alarm_clear_key(asset=fleet_a.asset, key=key, reason="fixed")
    run_outbox()
    services.ticket_transition(actor=support, ticket=ticket, to=Status.RESOLVED)
    Ticket.objects.filter(pk=ticket.pk).update(resolved_at=timezone.now() - timedelta(days=5))
    raise_alarm(fleet_a, hot_rule)
    run_outbox()
    assert Ticket.objects.count() == 2


def test_alarms_of_rules_without_a_ticket_priority_open_nothing(
    fleet_a: Installed, hot_rule: AlarmRule
) -> None:
    hot_rule.ticket_priority = ""
    hot_rule.save()
    raise_alarm(fleet_a, hot_rule)
    assert run_outbox() == ["support.on_alarm_raised"]
    assert not Ticket.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_concurrent_alarm_events_open_exactly_one_ticket(fleet_a: Installed, hot_rule: AlarmRule) -> None:
    # The alarm's row only: alarm_raise would publish its own event to the broker on commit.
    alarm = Alarm.objects.create(
        customer=fleet_a.asset.customer, asset=fleet_a.asset, rule=hot_rule, kind="threshold",
        key=alarms.rule_key(hot_rule), severity="critical", message="Oil temperature 97 °C",
        value=Decimal("97"), raised_at=timezone.now(),
    )  # fmt: skip
    at_once(lambda: services.on_alarm_raised(alarm_id=str(alarm.pk)), 8)
    ticket = Ticket.objects.get()
    assert ticket.events.filter(kind="comment").count() == 7  # the other seven commented on it


# --- disputes ----------------------------------------------------------------------------------


def test_a_dispute_becomes_a_billing_ticket_that_finance_settles_with_a_credit_note(
    admin_a: User, viewer_a: User, admin_b: User, finance: User, invoice_a: Invoice
) -> None:
    line = invoice_a.lines.get(metric="run_hours")
    url = f"/api/v1/invoices/{invoice_a.pk}/dispute/"
    body = {"reason": "We were down three days", "line": line.pk}
    assert client_for(viewer_a).post(url, body, content_type=JSON).status_code == 403
    assert client_for(admin_b).post(url, body, content_type=JSON).status_code == 404
    response = client_for(admin_a).post(url, body, content_type=JSON)
    assert response.status_code == 201
    ticket = Ticket.objects.get(pk=response.json()["id"])
    assert (ticket.category, ticket.source, ticket.invoice, ticket.invoice_line) == (
        Category.BILLING, Source.DISPUTE, invoice_a, line,
    )  # fmt: skip

    # Finance sees billing tickets only, and settles this one.
    services.ticket_open(actor=None, customer=invoice_a.customer, subject="Noise", description="Loud.")
    listed = client_for(finance).get("/api/v1/tickets/").json()
    assert [t["number"] for t in listed["results"]] == [ticket.number]
    settled = client_for(finance).post(
        f"/api/v1/tickets/{ticket.pk}/credit-note/",
        {"amount": "5.00", "reason": "Downtime"},
        content_type=JSON,
    )
    assert settled.status_code == 200
    note = CreditNote.objects.get()
    assert (note.invoice, note.amount, settled.json()["status"], settled.json()["credit_note"]) == (
        invoice_a, Decimal("5.00"), "resolved", str(note.pk),
    )  # fmt: skip
    visible = client_for(admin_a).get(f"/api/v1/tickets/{ticket.pk}/").json()
    assert any(note.number in e["body"] for e in visible["events"])


def test_support_cannot_issue_credit_notes(support: User, admin_a: User, invoice_a: Invoice) -> None:
    ticket = services.dispute_open(actor=admin_a, invoice=invoice_a, reason="Too high")
    response = client_for(support).post(
        f"/api/v1/tickets/{ticket.pk}/credit-note/", {"amount": "5", "reason": "x"}, content_type=JSON
    )
    assert response.status_code == 403
    assert not CreditNote.objects.exists()


# --- internal notes never reach a customer -------------------------------------------------


@pytest.fixture
def noted(customer_a: Customer, viewer_a: User, support: User) -> Ticket:
    ticket = services.ticket_open(
        actor=viewer_a, customer=customer_a, subject="Leak", description="Oil on floor"
    )
    services.ticket_assign(actor=support, ticket=ticket, assignee=support)
    services.ticket_comment(actor=support, ticket=ticket, body="We send a technician tomorrow.")
    services.ticket_comment(actor=support, ticket=ticket, body="SECRET: warranty expired", internal=True)
    return ticket


def test_internal_notes_are_invisible_to_customers_in_pages_and_api(
    noted: Ticket, viewer_a: User, admin_a: User, support: User
) -> None:
    for user in (viewer_a, admin_a):
        client = client_for(user)
        for url in (f"/support/tickets/{noted.pk}/", f"/support/tickets/{noted.pk}/?partial=timeline"):
            page = client.get(url).content.decode()
            assert "technician tomorrow" in page
            assert "SECRET" not in page
        api = client.get(f"/api/v1/tickets/{noted.pk}/").json()
        assert [e for e in api["events"] if e["internal"]] == []
        assert "SECRET" not in str(api)
    staff = client_for(support).get(f"/api/v1/tickets/{noted.pk}/").json()
    assert any(e["internal"] and "SECRET" in e["body"] for e in staff["events"])


def test_internal_notes_are_never_mailed_to_customers(noted: Ticket, viewer_a: User, support: User) -> None:
    mail.outbox.clear()
    for event in TicketEvent.objects.filter(ticket=noted).order_by("id"):
        notify(event.pk)
    to_customer = [m for m in mail.outbox if viewer_a.email in m.to]
    assert to_customer, "the public reply is mailed to the customer"
    assert all("SECRET" not in m.body for m in to_customer)
    assert any("We send a technician tomorrow." in m.body for m in to_customer)
    # A customer's own comment goes to the assignee.
    mail.outbox.clear()
    event = services.ticket_comment(actor=viewer_a, ticket=noted, body="Thanks!")
    notify(event.pk)
    assert [m.to for m in mail.outbox] == [[support.email]]


@pytest.mark.django_db(transaction=True)
def test_internal_notes_are_never_sent_to_customer_sockets(
    customer_a: Customer, viewer_a: User, support: User
) -> None:
    ticket = services.ticket_open(actor=viewer_a, customer=customer_a, subject="Leak", description="Oil")
    customer_headers, staff_headers = socket_headers(viewer_a), socket_headers(support)

    async def scenario() -> None:
        from asgiref.sync import sync_to_async

        customer = WebsocketCommunicator(application, "/ws/live/", headers=customer_headers)
        staff = WebsocketCommunicator(application, "/ws/live/", headers=staff_headers)
        assert (await customer.connect(timeout=5))[0]
        assert (await staff.connect(timeout=5))[0]
        for socket in (customer, staff):  # whatever a socket says on connect
            while not await socket.receive_nothing(timeout=0.3):
                await socket.receive_json_from()
        await sync_to_async(services.ticket_comment)(
            actor=support, ticket=ticket, body="SECRET", internal=True
        )
        got = await staff.receive_json_from(timeout=5)
        assert (got["type"], got.get("internal"), got["ticket"]) == (
            "ticket.comment",
            True,
            str(ticket.pk),
        ), got
        assert await customer.receive_nothing(timeout=1)
        await sync_to_async(services.ticket_comment)(actor=support, ticket=ticket, body="On our way")
        public = await customer.receive_json_from(timeout=5)
        assert (public["type"], public["ticket"]) == ("ticket.comment", str(ticket.pk))
        assert "internal" not in public
        await customer.disconnect()
        await staff.disconnect()

    async_to_sync(scenario)()


# --- attachments -----------------------------------------------------------------------------


def test_attachments_are_checked_by_size_and_content(
    customer_a: Customer, viewer_a: User, viewer_b: User, settings: Any, tmp_path: Any
) -> None:
    settings.ATTACHMENTS_ROOT = tmp_path
    ticket = services.ticket_open(
        actor=viewer_a, customer=customer_a, subject="Photo", description="See photo"
    )
    client = client_for(viewer_a)
    url = f"/api/v1/tickets/{ticket.pk}/attachments/"
    fake_png = SimpleUploadedFile("photo.png", b"MZ\x90\x00 this is an exe", "image/png")
    assert client.post(url, {"file": fake_png}).status_code == 400
    exe = SimpleUploadedFile("tool.exe", b"MZ\x90\x00", "application/octet-stream")
    assert "PNG, JPEG, PDF" in str(client.post(url, {"file": exe}).json())
    settings.ATTACHMENT_MAX_BYTES = 1000
    big = SimpleUploadedFile("big.txt", b"x" * 1001, "text/plain")
    assert "up to" in str(client.post(url, {"file": big}).json())
    png = SimpleUploadedFile("../../etc/photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "image/png")
    created = client.post(url, {"file": png})
    assert created.status_code == 201
    stored = ticket.attachments.get()
    assert "photo" not in str(stored.file.name)  # a random name on disk
    assert stored.file.path.startswith(str(tmp_path))
    assert stored.name == "photo.png"  # the path part of the name is dropped

    download = client.get(created.json()["url"])
    assert download.status_code == 200
    assert download["Content-Disposition"].startswith("attachment")
    assert b"".join(download.streaming_content).startswith(b"\x89PNG")
    assert client_for(viewer_b).get(created.json()["url"]).status_code == 404
    assert ticket.attachments.count() == 1


def test_a_covered_asset_links_its_contract_and_terms(
    customer_a: Customer, plan: Any, fleet_a: Installed, viewer_a: User
) -> None:
    from tests.billing_fixtures import contract_for

    contract = contract_for(customer_a, plan, fleet_a.asset, date(2026, 1, 1))
    response = client_for(viewer_a).post(
        "/api/v1/tickets/",
        {"subject": "Noise", "description": "Rattles", "priority": "P2", "asset": str(fleet_a.asset.pk)},
        content_type=JSON,
    )
    assert response.status_code == 201
    data = response.json()
    assert (data["contract"], data["sla_source"], data["first_response_minutes"]) == (
        str(contract.pk),
        contract.number,
        240,
    )
    assert data["source"] == "portal"


def test_files_of_internal_notes_are_as_internal_as_the_notes(
    customer_a: Customer, viewer_a: User, support: User, settings: Any, tmp_path: Any
) -> None:
    settings.ATTACHMENTS_ROOT = tmp_path
    ticket = services.ticket_open(actor=viewer_a, customer=customer_a, subject="Leak", description="Oil")
    note = services.ticket_comment(actor=support, ticket=ticket, body="Warranty papers", internal=True)
    secret = services.attachment_add(
        actor=support, ticket=ticket, event=note,
        upload=SimpleUploadedFile("warranty.txt", "Garantie bis März".encode(), "text/plain"),
    )  # fmt: skip
    customer_view = client_for(viewer_a).get(f"/api/v1/tickets/{ticket.pk}/").json()
    assert customer_view["attachments"] == []
    assert (
        client_for(viewer_a).get(f"/api/v1/tickets/{ticket.pk}/attachments/{secret.pk}/").status_code == 404
    )
    staff_view = client_for(support).get(f"/api/v1/tickets/{ticket.pk}/").json()
    assert [a["name"] for a in staff_view["attachments"]] == ["warranty.txt"]


def test_text_cut_inside_a_character_at_the_sniffing_boundary_is_still_text(
    customer_a: Customer, viewer_a: User, settings: Any, tmp_path: Any
) -> None:
    settings.ATTACHMENTS_ROOT = tmp_path
    ticket = services.ticket_open(actor=viewer_a, customer=customer_a, subject="Log", description="See log")
    text = ("x" * 511 + "ä" + "more").encode()  # byte 512 is the first half of "ä"
    services.attachment_add(
        actor=viewer_a, ticket=ticket, upload=SimpleUploadedFile("run.log", text, "text/plain")
    )
    assert ticket.attachments.count() == 1


def test_a_customer_naming_a_customer_opens_for_their_own(viewer_a: User, customer_b: Customer) -> None:
    response = client_for(viewer_a).post(
        "/api/v1/tickets/",
        {"subject": "Hi", "description": "Question", "customer": str(customer_b.pk)},
        content_type=JSON,
    )
    assert response.status_code == 201
    assert response.json()["customer"] == str(viewer_a.customer_id)
