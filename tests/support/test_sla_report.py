"""The SLA report: a first response still awaited and not yet due is not "in time"; one past its
due time without an answer is breached, flagged by the sweep or not."""

from __future__ import annotations

import json
import re
from datetime import timedelta

from django.utils import timezone

from portal.models import Customer, User
from support import services
from support.models import Ticket
from tests.conftest import client_for


def _open(
    customer: Customer, actor: User, subject: str, *, hours_ago: float = 0, priority: str = "P1"
) -> Ticket:
    at = timezone.now() - timedelta(hours=hours_ago)
    return services.ticket_open(
        actor=actor, customer=customer, subject=subject, description="x", priority=priority, at=at
    )


def _row(html: str, customer: str) -> dict[str, str]:
    row = next(r for r in re.findall(r"<tr data-month=.*?</tr>", html, re.S) if customer in r)
    return dict(re.findall(r'data-field="([a-z-]+)">([^<]*)<', row))


def test_a_fresh_unanswered_ticket_is_awaited_not_in_time(
    support: User, viewer_a: User, customer_a: Customer
) -> None:
    _open(customer_a, viewer_a, "Fresh")  # P1: four hours to answer, none gone
    row = _row(client_for(support).get("/support/sla/").content.decode(), "Alpha Dairy")
    assert row == {
        "first-in-time-pct": "—",
        "first-in-time": "0",
        "first-breached": "0",
        "first-awaited": "1",
    }


def test_unanswered_past_due_is_breached_and_answered_in_time_is_met(
    support: User, viewer_a: User, customer_a: Customer
) -> None:
    late = _open(customer_a, viewer_a, "Late", hours_ago=5)  # P1 due after 4 h; not swept: no flag yet
    assert not late.first_response_breached
    answered = _open(customer_a, viewer_a, "Answered")
    services.ticket_comment(actor=support, ticket=answered, body="On it")
    _open(customer_a, viewer_a, "Fresh")
    html = client_for(viewer_a).get("/support/sla/").content.decode()
    row = _row(html, "Alpha Dairy")
    assert row == {"first-in-time-pct": "50\u00a0%", "first-in-time": "1", "first-breached": "1",
                   "first-awaited": "1"}  # fmt: skip
    chart = json.loads(re.search(r'id="sla-data"[^>]*>(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    assert list(chart["Alpha Dairy"].values()) == [50.0]


def test_a_month_with_nothing_decided_charts_no_bar(
    support: User, viewer_a: User, customer_a: Customer
) -> None:
    _open(customer_a, viewer_a, "Fresh")
    html = client_for(support).get("/support/sla/").content.decode()
    chart = json.loads(re.search(r'id="sla-data"[^>]*>(.*?)</script>', html, re.S).group(1))  # type: ignore[union-attr]
    assert list(chart["Alpha Dairy"].values()) == [None]  # was 100.0
