"""The ticket filters: one FilterSet (support.selectors) for the API list and the agent queue."""

from __future__ import annotations

import pytest

from portal.models import Customer, User
from support import services
from support.models import Ticket
from tests.conftest import client_for


@pytest.fixture
def tickets(customer_a: Customer, viewer_a: User, support: User) -> list[Ticket]:
    urgent = services.ticket_open(
        actor=viewer_a, customer=customer_a, subject="Urgent leak", description="x", priority="P1"
    )
    calm = services.ticket_open(
        actor=viewer_a, customer=customer_a, subject="Calm question", description="x", priority="P4"
    )
    services.ticket_assign(actor=support, ticket=urgent, assignee=support)
    return [urgent, calm]


def test_the_api_and_the_queue_filter_alike(support: User, tickets: list[Ticket]) -> None:
    client = client_for(support)
    query = {"status": "unresolved", "assignee": "me", "priority": "P1"}

    api = client.get("/api/v1/tickets/", query).json()
    page = client.get("/support/tickets/", query).content.decode()

    assert [t["subject"] for t in api["results"]] == ["Urgent leak"]
    assert "Urgent leak" in page
    assert "Calm question" not in page


def test_a_bad_ticket_filter_is_a_400_in_the_api_and_a_message_on_the_page(
    support: User, tickets: list[Ticket]
) -> None:
    client = client_for(support)

    api = client.get("/api/v1/tickets/", {"assignee": "someone", "priority": "P9"})
    page = client.get("/support/tickets/", {"assignee": "someone"})
    rows = client.get("/support/tickets/", {"assignee": "someone", "partial": "1"})

    assert api.status_code == 400
    assert sorted(e["field"] for e in api.json()["errors"]) == ["assignee", "priority"]
    assert page.status_code == 200
    assert "A user id, `me` or `none`." in page.content.decode()
    assert "Urgent leak" in page.content.decode()  # the bad filter is left out, the rest apply
    assert rows.status_code == 200
