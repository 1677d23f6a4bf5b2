"""Issue 16: every live page applies every message its server-rendered parts show. The fleet
overview's health column and maintenance badge, and the home page's ticket panel, follow the
server without a reload, and read as a reload does. The services run in a thread of the test
(Playwright's event loop holds this one) and publish through the real channel layer
to the real ASGI server."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fleet import windows
from fleet.health import evaluate
from fleet.models import AssetModel
from portal.models import Customer, User
from support import services
from support.models import Ticket
from tests.browser.test_live_consistency import as_user, open_live
from tests.factories import PASSWORD
from tests.fleet.conftest import install
from tests.fleet.test_live_messages import drifting
from tests.integration import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def in_a_thread(work: Callable[[], Any]) -> None:
    sender = threading.Thread(target=work)
    sender.start()
    sender.join()


def test_the_overview_health_column_follows_an_evaluation(
    page: Any, asgi_server: str, viewer_a: User, customer_a: Customer, compressor: AssetModel
) -> None:
    as_user(viewer_a, "de-DE", "Europe/Berlin")
    mine = install(customer_a, compressor, "LIVE-GAP-H1")
    drifting(mine, compressor)
    open_live(page, asgi_server, viewer_a, "/fleet/")
    cell = f'tr[data-asset-id="{mine.asset.pk}"] [data-field="health"]'
    assert page.text_content(cell).strip() == "—"  # never evaluated
    page.evaluate("window.__noReload = 1")

    in_a_thread(lambda: evaluate([mine.asset.pk]))
    page.wait_for_selector(f"{cell} [data-risk]", timeout=20_000)
    assert page.evaluate("window.__noReload") == 1
    live = page.text_content(cell).strip()
    title = page.get_attribute(f"{cell} [data-risk]", "title")
    assert "·" in live
    page.reload()
    assert page.text_content(cell).strip() == live  # as the server writes it
    assert page.get_attribute(f"{cell} [data-risk]", "title") == title
    screenshot(page, "live-overview-health")


def test_the_overview_shows_a_window_planned_and_cancelled_live(
    page: Any, asgi_server: str, viewer_a: User, support: User, customer_a: Customer, compressor: AssetModel
) -> None:
    mine = install(customer_a, compressor, "LIVE-GAP-M1")
    open_live(page, asgi_server, viewer_a, "/fleet/")
    row = f'tr[data-asset-id="{mine.asset.pk}"]'
    badge = f"{row} [data-maintenance]"
    assert page.locator(badge).count() == 0
    page.evaluate("window.__noReload = 1")

    now = datetime.now(UTC)
    planned: list[Any] = []

    def plan() -> None:
        window = windows.window_plan(
            actor=support, customer=customer_a, title="Service", starts_at=now - timedelta(minutes=1),
            ends_at=now + timedelta(hours=2), assets=[mine.asset],
        )  # fmt: skip
        planned.append(window)

    in_a_thread(plan)
    page.wait_for_selector(badge, timeout=20_000)
    assert page.evaluate("window.__noReload") == 1
    live = page.inner_text(row)
    page.reload()
    assert page.inner_text(row) == live

    page.evaluate("window.__noReload = 1")
    in_a_thread(lambda: windows.window_cancel(actor=support, window=planned[0]))
    page.wait_for_selector(badge, state="detached", timeout=20_000)
    assert page.evaluate("window.__noReload") == 1


def open_home(page: Any, base: str, user: User) -> None:
    """`user` signed in on the home page, its live socket connected (the server's hello came)."""
    login(page, base, user.email, PASSWORD)
    page.wait_for_url(f"{base}/")
    frames: list[Any] = []
    page.on("websocket", lambda socket: socket.on("framereceived", lambda frame: frames.append(frame)))
    page.reload()
    for _ in range(150):  # Playwright hands events over while it waits
        if frames:
            return
        page.wait_for_timeout(100)
    raise AssertionError("the home page's live socket said nothing in 15 s")


PANEL = "#home-tickets"


def ticket_opened(author: User, customer: Customer) -> Ticket:
    """A ticket opened by `author`, in a thread of the test (it publishes after its commit)."""
    opened: list[Ticket] = []
    in_a_thread(
        lambda: opened.append(
            services.ticket_open(actor=author, customer=customer, subject="Hums", description="x")
        )
    )
    return opened[0]


def panel_followed(page: Any, steps: list[tuple[Callable[[], Any], str]]) -> None:
    """The home's ticket panel, empty at first, shows each step's `text` after it without a
    reload, and reads after the last as after a reload."""
    assert "No open ticket" in page.inner_text(PANEL)
    page.evaluate("window.__noReload = 1")
    for step, text in steps:
        step()
        page.wait_for_selector(f"{PANEL} >> text={text}", timeout=20_000)
    assert page.evaluate("window.__noReload") == 1
    live = page.inner_text(PANEL)
    page.reload()
    assert page.inner_text(PANEL) == live  # as the server writes it


def test_the_customer_home_ticket_panel_follows_the_desk(
    page: Any, asgi_server: str, viewer_a: User, admin_a: User, support: User, customer_a: Customer
) -> None:
    open_home(page, asgi_server, viewer_a)
    opened: list[Ticket] = []

    def prioritise() -> None:
        in_a_thread(lambda: services.ticket_set_priority(actor=support, ticket=opened[0], priority="P1"))

    panel_followed(page, [(lambda: opened.append(ticket_opened(admin_a, customer_a)), "1 open ticket"),
                          (prioritise, "P1")])  # fmt: skip
    assert "Hums" in page.inner_text(PANEL)


def test_the_support_home_ticket_panel_follows_the_desk(
    page: Any, asgi_server: str, viewer_a: User, support: User, customer_a: Customer
) -> None:
    open_home(page, asgi_server, support)
    opened: list[Ticket] = []

    def assign() -> None:
        in_a_thread(lambda: services.ticket_assign(actor=support, ticket=opened[0], assignee=support))

    panel_followed(page, [(lambda: opened.append(ticket_opened(viewer_a, customer_a)), "1 unassigned"),
                          (assign, "1 mine")])  # fmt: skip
