"""One open dispute per invoice: a second one points to the first instead of opening another."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.models import Invoice
from portal.models import User
from support import services
from support.models import Status, Ticket
from tests.conftest import client_for
from tests.integration import at_once

JSON = "application/json"


def test_the_dispute_page_links_to_the_open_dispute_instead_of_opening_another(
    admin_a: User, invoice_a: Invoice
) -> None:
    client = client_for(admin_a)
    url = f"/support/disputes/{invoice_a.pk}/"
    first = client.post(url, {"reason": "Too many hours"})
    ticket = Ticket.objects.get()
    assert first.status_code == 302

    page = client.get(url).content.decode()
    assert 'data-testid="dispute-exists"' in page
    assert f'href="/support/tickets/{ticket.pk}/"' in page
    assert 'name="reason"' not in page  # no second form

    again = client.post(url, {"reason": "And the fee"})
    assert again.status_code == 200
    assert ticket.number in again.content.decode()
    assert Ticket.objects.count() == 1


def test_the_api_answers_a_second_dispute_with_the_open_one(admin_a: User, invoice_a: Invoice) -> None:
    client = client_for(admin_a)
    url = f"/api/v1/invoices/{invoice_a.pk}/dispute/"
    assert client.post(url, {"reason": "Too many hours"}, content_type=JSON).status_code == 201
    ticket = Ticket.objects.get()
    second = client.post(url, {"reason": "And the fee"}, content_type=JSON)
    assert second.status_code == 400
    (error,) = second.json()["errors"]
    assert error["field"] == "invoice"
    assert ticket.number in error["message"]
    assert str(ticket.pk) in error["message"]
    assert Ticket.objects.count() == 1


def test_a_resolved_dispute_lets_a_new_one_open(admin_a: User, finance: User, invoice_a: Invoice) -> None:
    ticket = services.dispute_open(actor=admin_a, invoice=invoice_a, reason="Too many hours")
    services.dispute_credit(actor=finance, ticket=ticket, amount=Decimal("1"), reason="ok")
    assert Ticket.objects.get().status == Status.RESOLVED
    second = services.dispute_open(actor=admin_a, invoice=invoice_a, reason="Now the fee")
    assert second.pk != ticket.pk


@pytest.mark.django_db(transaction=True)
def test_two_admins_disputing_at_once_open_one_ticket(admin_a: User, invoice_a: Invoice) -> None:
    def dispute() -> str:
        try:
            services.dispute_open(actor=admin_a, invoice=invoice_a, reason="Twice")
        except services.DisputeExistsError:
            return "exists"
        return "opened"

    assert sorted(at_once(dispute, 4)) == ["exists", "exists", "exists", "opened"]
    assert Ticket.objects.count() == 1
