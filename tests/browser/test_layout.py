"""The layouts issue 16 named, each pinned (the every-page sweep checks the general rules):
the ticket queue's SLA, due and assignee and the alarm centre's buttons in sight at 1366, the
operator's "Log out" at 1280 and 1366, and a customer's fleet, home and asset page on a phone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fleet.models import Asset
from portal.roles import Role
from tests.browser import sweep_data
from tests.integration import LAPTOP, PHONE, assert_fits, login, out_of_sight, screenshot

# The tests only read the sweep's data, built once for the module (tests/browser/conftest.py).
pytestmark = [pytest.mark.browser, pytest.mark.django_db]


@pytest.fixture
def demo(sweep_site: None) -> None:
    """The every-page sweep's data (tests/browser/sweep_data.py)."""


def logged_in(browser: Any, base: str, role: Role, screen: dict[str, int], **options: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=screen, **options)
    page = context.new_page()
    try:
        login(page, base, sweep_data.ROLE_LOGINS[role], sweep_data.PASSWORD)
        page.wait_for_url(f"{base}/")
        yield page
    finally:
        context.close()


@pytest.fixture
def support_page(browser: Any, asgi_server: str, demo: None) -> Iterator[Any]:
    yield from logged_in(browser, asgi_server, Role.SUPPORT, LAPTOP)


@pytest.fixture
def phone_page(browser: Any, asgi_server: str, demo: None) -> Iterator[Any]:
    yield from logged_in(browser, asgi_server, Role.CUSTOMER_VIEWER, PHONE, is_mobile=True, has_touch=True)


def test_the_ticket_queue_shows_sla_due_and_assignee_at_1366(support_page: Any, asgi_server: str) -> None:
    """It was 1,606 px of table in a 1,150 px box: SLA, due and assignee out of sight."""
    support_page.goto(f"{asgi_server}/support/tickets/")
    headers = support_page.locator("#ticket-table th").all_inner_texts()
    assert [h.lower() for h in headers[-3:]] == ["sla", "due", "assignee"]
    assert out_of_sight(support_page, "#ticket-table th") == []
    assert out_of_sight(support_page, "#ticket-table td") == []
    screenshot(support_page, "layout-ticket-queue-1366")


def test_the_alarm_centre_buttons_are_in_sight_at_1366(support_page: Any, asgi_server: str) -> None:
    support_page.goto(f"{asgi_server}/alarms/")
    buttons = support_page.locator("#alarm-table button")
    assert buttons.count() >= 10  # Acknowledge and Clear on each active alarm
    assert out_of_sight(support_page, "#alarm-table button") == []
    screenshot(support_page, "layout-alarm-centre-1366")


@pytest.mark.parametrize("width", [1280, 1366])
def test_the_operator_reaches_log_out_and_every_menu(
    browser: Any, asgi_server: str, demo: None, width: int
) -> None:
    """Seventeen entries in one row pushed "Log out" off the screen at 1280 and 1366."""
    for page in logged_in(browser, asgi_server, Role.OPERATOR, {"width": width, "height": 768}):
        assert page.get_by_role("button", name="Log out").is_visible()
        assert out_of_sight(page, ".topbar a, .topbar button, .topbar summary") == []
        menus = page.locator(".mainnav summary")
        assert menus.all_inner_texts() == ["Fleet", "Support", "Billing", "Admin"]
        for menu in menus.all():
            menu.click()
            assert out_of_sight(page, ".mainnav details[open] a") == []
            screenshot(page, f"layout-operator-menu-{menu.inner_text().lower()}-{width}")
        assert page.locator(".mainnav details[open]").count() == 1  # opening one closed the others
        page.keyboard.press("Escape")
        assert page.locator(".mainnav details[open]").count() == 0


def test_a_customer_phone_shows_the_fleet_home_and_asset_page(phone_page: Any, asgi_server: str) -> None:
    """On a phone the fleet table showed only asset and site, the home page was 487 px wide and
    the asset page 754 px."""
    assert_fits(phone_page, "home")
    phone_page.goto(f"{asgi_server}/fleet/")
    first = phone_page.locator("#asset-table tbody tr").first
    cells = first.locator("td")
    assert cells.count() >= 7
    for cell in cells.all():
        assert cell.is_visible()
    assert out_of_sight(phone_page, "#asset-table tbody tr:first-child td") == []
    screenshot(phone_page, "layout-fleet-phone")
    # The demo's drifting compressor: charts, a prediction.
    asset = Asset.objects.get(serial_number="AC75-1002")
    phone_page.goto(f"{asgi_server}/fleet/assets/{asset.pk}/")
    phone_page.wait_for_load_state("networkidle")
    assert_fits(phone_page, "asset page")
    screenshot(phone_page, "layout-asset-phone")
