"""The fleet overview in pages: the page links keep the filters, a row on the page follows its
heartbeats live, a heartbeat of an asset on another page moves only the tiles, and the page
fits a laptop and a phone with no console error."""

from __future__ import annotations

from typing import Any

import pytest

from fleet.models import AssetModel
from portal.models import Customer, User
from tests.browser.test_fleet_live import post_heartbeat
from tests.factories import PASSWORD
from tests.fleet.conftest import install
from tests.integration import SCREENS, assert_fits, login, on_screen, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def signed_in(page: Any, asgi_server: str, live_worker: Any, viewer_a: User) -> Any:
    """The page, signed in as customer A's viewer, with a worker that sends the live frames."""
    login(page, asgi_server, viewer_a.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    return page


def test_a_page_of_the_fleet_follows_its_rows_live_and_the_tiles_follow_every_asset(
    signed_in: Any, asgi_server: str, customer_a: Customer, customer_b: Customer, compressor: AssetModel
) -> None:
    page = signed_in
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    fleet = [install(customer_a, compressor, f"PG-{n:03d}") for n in range(55)]  # by name: 50, then 5
    theirs = install(customer_b, compressor, "PG-B01")
    on_page, off_page = fleet[52], fleet[1]

    page.goto(f"{asgi_server}/fleet/?q=PG&page=2")
    page.wait_for_selector('[data-live-state="live"]')
    assert page.locator("#asset-table tbody tr").count() == 5
    assert page.locator("[data-shown]").inner_text() == "Assets 51–55 of 55"
    assert page.locator('[data-tile="never_seen"] [data-count]').inner_text() == "55"
    assert "PG-B01" not in page.content()
    for screen in SCREENS:
        on_screen(page, screen)
        assert_fits(page, ("fleet overview, page 2", screen))
        assert page.locator("nav.pagination").is_visible()
        screenshot(page, f"fleet-overview-page-2-{screen['width']}")

    # Another page's asset and another customer's: no row here; only the first moves a tile.
    assert post_heartbeat(asgi_server, theirs.token, 1, "fault") == 202
    assert post_heartbeat(asgi_server, off_page.token, 1, "fault") == 202
    page.wait_for_function(
        """() => document.querySelector('[data-tile="fault"] [data-count]').textContent === '1'""",
        timeout=20_000,
    )
    assert page.locator('[data-tile="never_seen"] [data-count]').inner_text() == "54"
    assert page.locator(f'tr[data-asset-id="{off_page.asset.pk}"]').count() == 0

    # This page's asset: its row and the tiles, at once.
    assert post_heartbeat(asgi_server, on_page.token, 1, "fault") == 202
    status = f"""document.querySelector('tr[data-asset-id="{on_page.asset.pk}"] [data-field="status"]')"""
    page.wait_for_function(f"() => {status}.textContent.trim() === 'Fault'", timeout=20_000)
    page.wait_for_function(
        """() => document.querySelector('[data-tile="fault"] [data-count]').textContent === '2'""",
        timeout=20_000,
    )

    # The link back keeps the search.
    page.click("nav.pagination >> text=Previous")
    page.wait_for_url("**/fleet/?q=PG&page=1")
    assert page.locator("#asset-table tbody tr").count() == 50
    off_status = page.locator(f'tr[data-asset-id="{off_page.asset.pk}"] [data-field="status"]')
    assert off_status.inner_text() == "Fault"
    assert errors == []
