"""The asset page's custom chart range in Chromium: a good one draws the charts over it, a
reversed one says so next to the field (it used to do nothing at all)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fleet.models import AssetModel
from portal.models import Customer, User
from tests.factories import PASSWORD
from tests.fleet.conftest import install_with_readings
from tests.integration import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_custom_range_draws_its_charts_and_a_reversed_one_is_refused(
    page: Any, asgi_server: str, viewer_a: User, customer_a: Customer, compressor: AssetModel
) -> None:
    mine = install_with_readings(customer_a, compressor, "RANGE-B1", minutes=40)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    login(page, asgi_server, viewer_a.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/fleet/assets/{mine.asset.pk}/")
    page.wait_for_selector('[data-chart="temp_c"] .main-svg')

    # The readings span the 50 to 10 minutes before now; Alpha Dairy's users see Berlin time.
    now = datetime.now(ZoneInfo("Europe/Berlin")).replace(second=0, microsecond=0)
    local = "%Y-%m-%dT%H:%M"
    page.fill('[data-custom="from"]', (now - timedelta(minutes=30)).strftime(local))
    page.fill('[data-custom="to"]', (now - timedelta(minutes=20)).strftime(local))
    page.click('button[type="submit"][data-range="custom"]')
    page.wait_for_selector('[data-range="custom"][aria-pressed="true"]')
    page.wait_for_selector('[data-chart="temp_c"][data-points]')
    points = int(page.get_attribute('[data-chart="temp_c"]', "data-points") or 0)
    assert 9 <= points <= 11, points  # ten minutes of a reading a minute, not the last hour's 40
    assert page.locator('[data-testid="range-error"]').count() == 0

    page.fill('[data-custom="from"]', (now - timedelta(minutes=20)).strftime(local))
    page.fill('[data-custom="to"]', (now - timedelta(minutes=30)).strftime(local))
    with page.expect_navigation() as navigation:
        page.click('button[type="submit"][data-range="custom"]')
    assert navigation.value.status == 400
    error = page.locator('[data-testid="range-error"]')
    assert error.inner_text().strip() == "From: Must be before “to”."
    assert page.get_attribute('[data-custom="from"]', "aria-invalid") == "true"
    # The page still works: the default range's charts are drawn.
    page.wait_for_selector('[data-chart="temp_c"][data-points="40"]')
    screenshot(page, "asset-page-reversed-range")
    # Chromium reports the page's own 400 on the console; nothing else may be there.
    assert [e for e in errors if "status of 400" not in e] == [], errors
    assert len(errors) == 1, errors


def test_the_csv_link_exports_the_range_the_charts_show(
    page: Any, asgi_server: str, viewer_a: User, customer_a: Customer, compressor: AssetModel
) -> None:
    mine = install_with_readings(customer_a, compressor, "RANGE-CSV", minutes=40)
    login(page, asgi_server, viewer_a.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/fleet/assets/{mine.asset.pk}/")
    page.wait_for_selector('[data-chart="temp_c"][data-points="40"]')
    page.click('button[data-range="7d"]')
    page.wait_for_selector('[data-range="7d"][aria-pressed="true"]')
    href = page.get_attribute("[data-telemetry-csv]", "href") or ""
    query = dict(part.split("=", 1) for part in href.split("?", 1)[1].split("&"))
    span = datetime.fromisoformat(query["to"]) - datetime.fromisoformat(query["from"])
    assert timedelta(days=7) <= span <= timedelta(days=7, minutes=2), href
    with page.expect_download() as download:
        page.click("[data-telemetry-csv]")
    with open(download.value.path(), encoding="utf-8") as file:
        lines = file.read().splitlines()
    assert lines[0] == "ts,seq,status,fault_code,energy_kwh,pressure_bar,run_hours,temp_c"
    assert len(lines) == 1 + 40  # a week at "raw": every reading, not the chart's points
    assert download.value.suggested_filename.startswith("RANGE-CSV-raw-")
