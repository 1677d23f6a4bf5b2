"""The desk's pages stay true live: the ticket page takes every change (status, priority,
assignee, SLA due times and breaches, status buttons, replies) and the queue its due times, with
a real ASGI server and Celery worker; the reply form's button sits under its textarea."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

import pytest
from django import db
from django.utils import timezone

from portal import formatting
from portal.models import Customer, User
from support import services
from support.models import Status, Ticket
from support.tasks import sla_sweep
from tests.browser.steps import watch_ticket
from tests.factories import PASSWORD
from tests.fleet_fixtures import Installed
from tests.integration import LAPTOP, PHONE, assert_fits, login, screenshot
from tests.support.conftest import opened_before, window_before

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
UTC_ZONE = zoneinfo.ZoneInfo("UTC")
T = TypeVar("T")

# What the page shows of the ticket's state, in one string.
STATE_JS = """() => [
  document.getElementById('ticket-state').innerText,
  document.querySelector('[data-field="assignee"]').textContent,
  document.querySelector('[data-field="terms"]').parentNode.textContent,
  Array.from(document.querySelectorAll('[data-field="actions"] button')).map(b => b.textContent).join('|'),
].join(' / ')"""


def desk(action: Callable[..., T], **kwargs: Any) -> T:
    """A desk service called as the server would, off this thread: Playwright's sync API keeps
    an event loop on it, and the live publisher may not run its own loop there."""

    def run() -> T:
        try:
            return action(**kwargs)
        finally:
            db.connection.close()  # the thread's own connection, which would outlive it

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def _shown(value: datetime, zone: zoneinfo.ZoneInfo) -> str:
    """What the server writes (`|when`) in `zone` and the cast's locale (en)."""
    with timezone.override(zone):
        return formatting.when(value, "en")


def _field_is(page: Any, name: str, text: str) -> None:
    page.wait_for_function(
        '([name, text]) => document.querySelector(`[data-field="${name}"]`).textContent.trim() === text',
        arg=[name, text],
        timeout=15_000,
    )


def test_the_ticket_page_takes_every_change_live(
    page: Any, asgi_server: str, live_worker: Any, viewer_a: User, support: User, customer_a: Customer
) -> None:
    ticket = desk(
        services.ticket_open, actor=viewer_a, customer=customer_a, subject="Valve drips", description="x"
    )
    watch_ticket(page, asgi_server, viewer_a.email, ticket.pk)
    assert page.locator('[data-field="actions"] button').count() == 0  # a new ticket: nothing to press

    desk(services.ticket_assign, actor=support, ticket=ticket, assignee=support)
    _field_is(page, "assignee", support.full_name or support.email)
    desk(services.ticket_set_priority, actor=support, ticket=ticket, priority="P1")
    _field_is(page, "priority", "P1")
    _field_is(page, "terms", "4 h to respond, 1 d to resolve")  # the default P1 terms
    _field_is(page, "first-response", "by " + _shown(ticket.created_at + timedelta(minutes=240), BERLIN))

    reply = desk(services.ticket_comment, actor=support, ticket=ticket, body="A technician is on the way.")
    page.wait_for_selector("text=A technician is on the way.")
    _field_is(page, "status", "Open")
    _field_is(page, "first-response", _shown(reply.created_at, BERLIN))

    # Two days old: the resolution (P1: one day) is overdue; the worker's sweep says so.
    Ticket.objects.filter(pk=ticket.pk).update(created_at=timezone.now() - timedelta(days=2))
    sla_sweep.delay()
    page.wait_for_function(
        """() => document.querySelector('[data-field="resolution-flag"]').textContent === 'breached'""",
        timeout=20_000,
    )
    overdue = Ticket.objects.get(pk=ticket.pk)
    _field_is(page, "resolution", "by " + _shown(overdue.resolution_due, BERLIN))

    desk(services.ticket_transition, actor=support, ticket=ticket, to=Status.PENDING_CUSTOMER)
    _field_is(page, "status", "Waiting for customer")
    _field_is(page, "resolution", "paused")
    desk(services.ticket_transition, actor=support, ticket=ticket, to=Status.OPEN)
    desk(services.ticket_transition, actor=support, ticket=ticket, to=Status.RESOLVED)
    _field_is(page, "status", "Resolved")
    page.wait_for_selector('[data-field="actions"] button[data-transition="open"]')
    assert page.evaluate("window.__noReload") == 1
    screenshot(page, "support-ticket-live-customer")

    live_state = page.evaluate(STATE_JS)
    page.reload()
    page.wait_for_selector('[data-live-state="live"]')
    assert page.evaluate(STATE_JS) == live_state  # live, every part reads as the server writes it

    page.get_by_role("button", name="Reopen", exact=True).click()  # a button drawn live posts like any other
    page.wait_for_url(f"{asgi_server}/support/tickets/{ticket.pk}/")
    _field_is(page, "status", "Open")
    assert Ticket.objects.get(pk=ticket.pk).status == Status.OPEN


def test_the_queue_shows_a_due_time_a_maintenance_window_moved(
    page: Any,
    asgi_server: str,
    live_worker: Any,
    viewer_a: User,
    support: User,
    customer_a: Customer,
    fleet_a: Installed,
) -> None:
    now = timezone.now()
    ticket = desk(opened_before, customer=customer_a, installed=fleet_a, author=viewer_a, now=now)
    desk(services.ticket_comment, actor=support, ticket=ticket, body="Looking")  # due now: the resolution
    before = Ticket.objects.get(pk=ticket.pk).due_at
    assert before is not None
    login(page, asgi_server, support.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/support/tickets/")
    page.wait_for_selector('[data-live-state="live"]')
    due = f'tr[data-ticket="{ticket.pk}"] [data-field="due"]'
    assert page.inner_text(due) == _shown(before, UTC_ZONE)

    window_before(customer_a, fleet_a, now)
    sla_sweep.delay()
    moved = _shown(before + timedelta(hours=1), UTC_ZONE)
    page.wait_for_function(
        "([sel, text]) => document.querySelector(sel).textContent.trim() === text",
        arg=[due, moved],
        timeout=20_000,
    )
    screenshot(page, "support-queue-due-moved")


@pytest.mark.parametrize("screen", [LAPTOP, PHONE], ids=["1366", "390"])
def test_the_reply_button_sits_under_its_textarea(
    browser: Any,
    asgi_server: str,
    support: User,
    viewer_a: User,
    customer_a: Customer,
    screen: dict[str, int],
) -> None:
    ticket = desk(
        services.ticket_open, actor=viewer_a, customer=customer_a, subject="Valve drips", description="x"
    )
    desk(services.ticket_transition, actor=support, ticket=ticket, to=Status.OPEN)
    for user in (viewer_a, support):  # the customer's form has no internal-note box; staff's has
        context = browser.new_context(viewport=screen)
        page = context.new_page()
        try:
            login(page, asgi_server, user.email, PASSWORD)
            page.wait_for_url(f"{asgi_server}/")
            page.goto(f"{asgi_server}/support/tickets/{ticket.pk}/")
            area = page.locator("#reply-body").bounding_box()
            button = page.locator('[data-testid="send-reply"]').bounding_box()
            assert button["y"] >= area["y"] + area["height"], (user.role, area, button)  # below, not beside
            assert abs(button["x"] - area["x"]) <= 1, (user.role, area, button)  # on the textarea's left edge
            assert button["x"] + button["width"] <= screen["width"]
            assert_fits(page)
            screenshot(page, f"support-reply-form-{user.role}-{screen['width']}")
        finally:
            context.close()
    # The status buttons say what they do, to assistive technology too.
    page = (context := browser.new_context(viewport=screen)).new_page()
    try:
        login(page, asgi_server, support.email, PASSWORD)
        page.wait_for_url(f"{asgi_server}/")
        page.goto(f"{asgi_server}/support/tickets/{ticket.pk}/")
        assert page.get_by_role("button", name="Resolve", exact=True).count() == 1
        assert page.get_by_role("button", name="Wait for customer", exact=True).count() == 1
        assert page.get_by_role("button", name="Resolved", exact=True).count() == 0
    finally:
        context.close()


def test_the_sla_report_counts_a_fresh_ticket_as_awaited_and_fits(
    page: Any, asgi_server: str, viewer_a: User, customer_a: Customer
) -> None:
    desk(
        services.ticket_open,
        actor=viewer_a,
        customer=customer_a,
        subject="Fresh",
        description="x",
        priority="P1",
    )
    login(page, asgi_server, viewer_a.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    for screen in (LAPTOP, PHONE):
        page.set_viewport_size(screen)
        page.goto(f"{asgi_server}/support/sla/")
        page.wait_for_selector("#sla-chart .main-svg")
        assert page.inner_text('[data-field="first-in-time-pct"]') == "—"  # not "100 %"
        assert page.inner_text('[data-field="first-awaited"]') == "1"
        # No bar for a month with nothing decided (it read 100).
        assert page.evaluate("() => document.getElementById('sla-chart').data[0].y") == [None]
        assert_fits(page)
        screenshot(page, f"support-sla-report-{screen['width']}")


def test_the_ticket_page_lists_a_new_alarm_of_its_machine(
    page: Any, asgi_server: str, viewer_a: User, customer_a: Customer, fleet_a: Installed
) -> None:
    from fleet import alarms

    ticket = desk(
        services.ticket_open,
        actor=viewer_a,
        customer=customer_a,
        subject="Hums",
        description="x",
        asset=fleet_a.asset,
    )
    watch_ticket(page, asgi_server, viewer_a.email, ticket.pk)
    assert page.inner_text("#ticket-alarms") == "No alarm on this machine."
    desk(
        alarms.alarm_raise, asset=fleet_a.asset, key="manual", kind="threshold", severity="warning",
        message="Vibration high", at=timezone.now(),
    )  # fmt: skip
    page.wait_for_selector("#ticket-alarms >> text=Vibration high", timeout=15_000)
    assert page.evaluate("window.__noReload") == 1
    live_list = page.inner_text("#ticket-alarms")
    page.reload()
    assert page.inner_text("#ticket-alarms") == live_list
