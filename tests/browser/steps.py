"""Steps that more than one browser test takes the same way."""

from __future__ import annotations

from typing import Any

from tests.factories import PASSWORD
from tests.integration import login


def watch_ticket(page: Any, base: str, email: str, ticket_pk: object) -> None:
    """Sign in as `email`, open the ticket's page and wait until its socket is live; the window
    is marked (`window.__noReload`) so that a test can tell a live update from a reload."""
    login(page, base, email, PASSWORD)
    page.wait_for_url(f"{base}/")
    page.goto(f"{base}/support/tickets/{ticket_pk}/")
    page.wait_for_selector('[data-live-state="live"]')
    page.evaluate("window.__noReload = 1")
