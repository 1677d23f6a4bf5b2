"""The desk in real browsers: an agent answers a customer's ticket while the customer watches."""

from __future__ import annotations

from typing import Any

import pytest

from portal.models import Customer, User
from support import services
from tests.browser.steps import watch_ticket
from tests.factories import PASSWORD
from tests.fleet_fixtures import Installed
from tests.integration import assert_no_csp_violations, login, screenshot, watch_csp

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_an_agent_answers_and_the_customer_sees_the_reply_arrive(
    browser: Any,
    page: Any,
    asgi_server: str,
    viewer_a: User,
    support: User,
    customer_a: Customer,
    fleet_a: Installed,
) -> None:
    ticket = services.ticket_open(
        actor=viewer_a,
        customer=customer_a,
        subject="Compressor 2 trips",
        description="Every hour since Monday.",
        asset=fleet_a.asset,
    )
    watch_ticket(page, asgi_server, viewer_a.email, ticket.pk)

    agent_context = browser.new_context(viewport={"width": 1280, "height": 800})
    agent_violations = watch_csp(agent_context)
    agent = agent_context.new_page()
    agent.set_default_timeout(15_000)
    try:
        login(agent, asgi_server, support.email, PASSWORD)
        agent.wait_for_url(f"{asgi_server}/")
        agent.goto(f"{asgi_server}/support/tickets/")
        agent.click(f"text={ticket.number}")
        agent.wait_for_selector("#ticket-charts .main-svg")  # the machine's telemetry, next to the ticket
        assert "Asset A-0001" in agent.inner_text("#asset-card")
        agent.fill("#reply-body", "Internal: check the warranty first")
        agent.check('input[name="internal"]')
        agent.click('[data-testid="send-reply"]')
        agent.wait_for_selector("text=Internal note added.")
        agent.fill("#reply-body", "A technician will be with you at 14:00.")
        agent.click('[data-testid="send-reply"]')
        agent.wait_for_selector("text=Reply sent.")
        screenshot(agent, "support-ticket-agent")
        assert_no_csp_violations(agent, agent_violations)
    finally:
        agent_context.close()

    page.wait_for_selector("text=A technician will be with you at 14:00.", timeout=15_000)
    assert page.evaluate("window.__noReload") == 1
    assert "check the warranty" not in page.content()
    page.wait_for_function(
        """() => document.querySelector('[data-testid="ticket-status"]').textContent === 'Open'"""
    )
    screenshot(page, "support-ticket-customer")
    page.goto(f"{asgi_server}/support/tickets/")
    screenshot(page, "support-ticket-list-customer")
