"""Support pages by role, the forms, and the queue's filters."""

from __future__ import annotations

import pytest

from portal.models import Customer, User
from portal.roles import Role
from support import services
from support.models import Status, Ticket
from tests.conftest import client_for
from tests.fleet_fixtures import Installed

PAGES = {
    "/support/tickets/": {Role.CUSTOMER_VIEWER: 200, Role.CUSTOMER_ADMIN: 200, Role.SUPPORT: 200,
                          Role.FINANCE: 200, Role.OPERATOR: 200},
    "/support/tickets/new/": {Role.CUSTOMER_VIEWER: 200, Role.CUSTOMER_ADMIN: 200, Role.SUPPORT: 200,
                              Role.FINANCE: 403, Role.OPERATOR: 200},
    "/support/sla/": {Role.CUSTOMER_VIEWER: 200, Role.CUSTOMER_ADMIN: 200, Role.SUPPORT: 200,
                      Role.FINANCE: 403, Role.OPERATOR: 200},
}  # fmt: skip


@pytest.fixture
def ticket(customer_a: Customer, viewer_a: User) -> Ticket:
    return services.ticket_open(
        actor=viewer_a, customer=customer_a, subject="Leaking valve", description="Drips"
    )


@pytest.mark.parametrize("url", list(PAGES))
def test_pages_by_role(cast: dict[str, User], ticket: Ticket, url: str) -> None:
    for role, expected in PAGES[url].items():
        assert client_for(cast[role]).get(url).status_code == expected, (url, role)


def test_finance_sees_no_ordinary_ticket(finance: User, ticket: Ticket) -> None:
    assert client_for(finance).get(f"/support/tickets/{ticket.pk}/").status_code == 404
    assert "Leaking valve" not in client_for(finance).get("/support/tickets/").content.decode()


def test_a_customer_opens_a_ticket_from_the_form(viewer_a: User, fleet_a: Installed) -> None:
    client = client_for(viewer_a)
    response = client.post(
        "/support/tickets/new/",
        {"subject": "Noise", "description": "Rattles at start", "category": "breakdown", "priority": "P2",
         "asset": str(fleet_a.asset.pk)},
        follow=True,
    )  # fmt: skip
    assert "opened. We reply by" in response.content.decode()
    ticket = Ticket.objects.get()
    assert (ticket.asset, ticket.created_by, ticket.priority) == (fleet_a.asset, viewer_a, "P2")
    bad = client.post("/support/tickets/new/", {"subject": "", "description": "", "priority": "P9"})
    assert bad.status_code == 200
    assert "form-errors" in bad.content.decode()
    assert Ticket.objects.count() == 1


def test_the_agent_works_a_ticket_from_its_page(support: User, viewer_a: User, ticket: Ticket) -> None:
    client = client_for(support)
    url = f"/support/tickets/{ticket.pk}/"
    page = client.get(url).content.decode()
    assert 'name="internal"' in page
    client.post(f"{url}assign/", {"assignee": str(support.pk)})
    client.post(f"{url}comment/", {"body": "Checking the logs", "internal": "1"})
    client.post(f"{url}comment/", {"body": "Please send a photo."})
    client.post(f"{url}transition/", {"status": "pending_customer"})
    ticket.refresh_from_db()
    assert (ticket.assignee, ticket.status) == (support, Status.PENDING_CUSTOMER)
    response = client.post(f"{url}transition/", {"status": "closed"}, follow=True)
    assert "cannot become closed" in response.content.decode()
    customer_page = client_for(viewer_a).get(url).content.decode()
    assert "Please send a photo." in customer_page
    assert "Checking the logs" not in customer_page
    assert 'name="internal"' not in customer_page


def test_the_queue_filters_and_sorts_by_due_time(
    support: User, customer_a: Customer, customer_b: Customer
) -> None:
    urgent = services.ticket_open(
        actor=None, customer=customer_b, subject="Down", description="x", priority="P1"
    )
    services.ticket_open(actor=None, customer=customer_a, subject="Later", description="x", priority="P4")
    client = client_for(support)
    page = client.get("/support/tickets/").content.decode()
    assert page.index("Down") < page.index("Later")
    filtered = client.get(f"/support/tickets/?customer={customer_a.pk}&partial=1").content.decode()
    assert "Later" in filtered
    assert "Down" not in filtered
    assert urgent.number in client.get("/support/tickets/?priority=P1").content.decode()
    assert client.get("/support/tickets/?customer=not-an-id").status_code == 200
    assert client.get("/api/v1/tickets/?customer=not-an-id").status_code == 400


def test_the_sla_report_charts_each_customer(
    support: User, viewer_a: User, ticket: Ticket, customer_b: Customer
) -> None:
    services.ticket_open(actor=None, customer=customer_b, subject="Other", description="x")
    page = client_for(support).get("/support/sla/").content.decode()
    assert "Alpha Dairy" in page
    assert "Bravo Breweries" in page
    mine = client_for(viewer_a).get("/support/sla/").content.decode()
    assert "Alpha Dairy" in mine
    assert "Bravo" not in mine


@pytest.mark.parametrize(
    ("value", "text"), [(45, "45 min"), (240, "4 h"), (1440, "1 d"), (1830, "1 d 6 h 30 min"), (None, "—")]
)
def test_sla_minutes_read_as_people_say_them(value: int | None, text: str) -> None:
    from portal.templatetags.portal_tags import minutes

    assert minutes(value) == text
