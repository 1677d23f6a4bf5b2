"""The fleet overview changes live: a heartbeat posted to the ingest API turns a row without reload."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fleet.models import AssetModel
from portal.models import Customer, User
from tests.factories import PASSWORD
from tests.fleet.conftest import install
from tests.integration import login, post_ingest, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def post_heartbeat(base: str, token: str, seq: int, status: str) -> int:
    body = {"seq": seq, "ts": datetime.now(UTC).isoformat(), "status": status, "metrics": {"temp_c": 71.5}}
    return post_ingest(base, token, body)


def post_counter(base: str, token: str, seq: int, run_hours: float) -> int:
    """A heartbeat carrying only the run-hours counter (billing's live usage test)."""
    body = {
        "seq": seq,
        "ts": datetime.now(UTC).isoformat(),
        "status": "ok",
        "metrics": {"run_hours": run_hours},
    }
    return post_ingest(base, token, body)


def test_a_row_turns_to_fault_without_reload(
    page: Any,
    asgi_server: str,
    live_worker: Any,
    viewer_a: User,
    customer_a: Customer,
    customer_b: Customer,
    compressor: AssetModel,
) -> None:
    mine = install(customer_a, compressor, "LIVE-A1")
    theirs = install(customer_b, compressor, "LIVE-B1")
    login(page, asgi_server, viewer_a.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/fleet/")
    page.wait_for_selector('[data-live-state="live"]')
    row = page.locator(f'tr[data-asset-id="{mine.asset.pk}"]')
    assert row.locator('[data-field="status"]').inner_text() == "Never seen"
    assert page.locator(f'tr[data-asset-id="{theirs.asset.pk}"]').count() == 0
    assert "LIVE-B1" not in page.content()
    screenshot(page, "fleet-overview-before")

    page.evaluate("window.__noReload = 1")  # survives only if the page is not reloaded
    assert post_heartbeat(asgi_server, theirs.token, 1, "fault") == 202
    assert post_heartbeat(asgi_server, mine.token, 1, "fault") == 202
    row_js = f"""document.querySelector('tr[data-asset-id="{mine.asset.pk}"]')"""
    cell = row_js + """.querySelector('[data-field="%s"]').textContent.trim()"""
    page.wait_for_function(f"() => {cell % 'status'} === 'Fault'", timeout=20_000)
    assert page.evaluate("window.__noReload") == 1
    assert page.locator('[data-tile="fault"] [data-count]').inner_text() == "1"
    values = row.locator('[data-field="values"]').text_content()
    assert values == "Temperature 71.5\u00a0°C "  # its name, the value at its unit's precision, the unit
    page.wait_for_function(f"() => {cell % 'alarms'} === '1'", timeout=10_000)
    # B's fault never reached A's page.
    assert "LIVE-B1" not in page.content()
    screenshot(page, "fleet-overview-live")


def test_the_asset_page_draws_charts_and_takes_live_values(
    page: Any,
    asgi_server: str,
    live_worker: Any,
    viewer_a: User,
    customer_a: Customer,
    compressor: AssetModel,
) -> None:
    from datetime import timedelta

    from fleet.ingest import worker
    from fleet.models import IngestInbox

    mine = install(customer_a, compressor, "CHART-A1")
    start = datetime.now(UTC) - timedelta(minutes=50)
    items = [
        {"seq": i, "ts": (start + timedelta(minutes=i)).isoformat(), "status": "ok", "fault_code": "",
         "metrics": {"temp_c": 60 + i % 7, "pressure_bar": 7.0, "run_hours": 100 + i / 60, "energy_kwh": i}}
        for i in range(40)
    ]  # fmt: skip
    IngestInbox.objects.create(device_id=mine.device.pk, count=len(items), items=items)
    worker.drain()

    login(page, asgi_server, viewer_a.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/fleet/assets/{mine.asset.pk}/")
    page.wait_for_selector('[data-live-state="live"]')
    page.wait_for_selector('[data-chart="temp_c"] .main-svg')
    assert page.get_attribute('[data-chart="temp_c"]', "data-points") == "40"
    page.wait_for_selector('[data-usage-chart="energy_kwh"][data-points]')
    assert int(page.get_attribute('[data-usage-chart="energy_kwh"]', "data-points") or 0) >= 1

    assert post_heartbeat(asgi_server, mine.token, 100, "ok") == 202
    page.wait_for_function(
        """() => document.querySelector('.value[data-metric="temp_c"] [data-value]')
                   .textContent === '71.5'""",
        timeout=20_000,
    )
    page.wait_for_function(
        """() => document.querySelector('[data-chart="temp_c"]').dataset.points === '41'"""
    )
    screenshot(page, "asset-page")

    page.click('[data-range="24h"]')
    page.wait_for_function(
        """() => document.querySelector('[data-chart-title="temp_c"]').textContent.includes('minute')"""
    )
    screenshot(page, "asset-page-day")


def test_the_asset_page_of_another_customer_is_404(
    page: Any, asgi_server: str, viewer_a: User, customer_b: Customer, compressor: AssetModel
) -> None:
    theirs = install(customer_b, compressor, "CHART-B1")
    login(page, asgi_server, viewer_a.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    response = page.goto(f"{asgi_server}/fleet/assets/{theirs.asset.pk}/")
    assert response is not None
    assert response.status == 404
    assert "CHART-B1" not in page.content()
