"""A customer sees the prediction, the health score, the forecast and the upcoming maintenance
window on the asset page (issue 15's browser case)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from fleet import windows
from fleet.health import evaluate
from fleet.ingest import worker
from fleet.models import AssetModel, HealthRule, IngestInbox
from portal.models import Customer, User
from tests.factories import PASSWORD
from tests.fleet.conftest import install
from tests.integration import SCREENS, assert_fits, login, on_screen, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_customer_sees_the_prediction_and_the_forecast(
    page: Any, asgi_server: str, viewer_a: User, customer_a: Customer, compressor: AssetModel
) -> None:
    # given two days of oil temperature rising 0.5 °C an hour, through the ingest worker
    mine = install(customer_a, compressor, "HEALTH-A1")
    HealthRule.objects.create(
        asset_model=compressor, name="Oil temperature heading for 85 °C", metric="temp_c", kind="trend",
        comparison="gt", limit=Decimal("85"), horizon_hours=24, lookback_hours=48,
    )  # fmt: skip
    now = datetime.now(UTC)
    start = now - timedelta(hours=48)
    items = [
        {"seq": i + 1, "ts": (start + timedelta(minutes=10 * i)).isoformat(), "status": "ok",
         "fault_code": "",
         "metrics": {"temp_c": 52 + 0.5 * (i / 6) + (i % 3) * 0.3, "pressure_bar": 7.0}}
        for i in range(48 * 6)
    ]  # fmt: skip
    IngestInbox.objects.create(device_id=mine.device.pk, count=len(items), items=items)
    worker.drain()
    summary = evaluate([mine.asset.pk], now)
    assert summary.raised == 1
    # and a service visit planned for the day after tomorrow
    windows.window_plan(
        actor=None, customer=customer_a, title="Replace the oil cooler", assets=[mine.asset],
        starts_at=now + timedelta(days=2), ends_at=now + timedelta(days=2, hours=3),
    )  # fmt: skip

    # when the customer's viewer opens the asset page
    login(page, asgi_server, viewer_a.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/fleet/assets/{mine.asset.pk}/")

    # then the health panel shows the score, the risk and the prediction with its expected time
    panel = page.locator('[data-panel="health"]')
    assert int(panel.locator("[data-health-score]").inner_text()) < 100
    prediction = panel.locator('[data-kind="prediction"]')
    assert "Temperature predicted to exceed 85 °C in ~" in prediction.inner_text()
    assert prediction.locator("[data-expected-at]").count() == 1
    # and the temperature chart draws the forecast: a dashed line to the limit
    page.wait_for_selector('[data-chart="temp_c"][data-forecast="temp_c"] .main-svg')
    dashes = page.evaluate(
        """() => document.querySelector('[data-chart="temp_c"]').data
                   .filter(t => t.line && t.line.dash === 'dash').map(t => t.y[t.y.length - 1])"""
    )
    assert dashes == [85]
    # and the upcoming window is on the same page
    assert "Replace the oil cooler" in page.locator('[data-testid="asset-windows"]').inner_text()
    for screen in SCREENS:
        on_screen(page, screen)
        page.reload()  # Plotly sizes its charts to the width they load at
        page.wait_for_selector('[data-chart="temp_c"][data-forecast="temp_c"] .main-svg')
        assert_fits(page, f"asset page with a prediction at {screen['width']}")
        screenshot(page, f"asset-health-{screen['width']}")


def test_the_fleet_overview_sorts_by_risk_and_fits(
    page: Any, asgi_server: str, viewer_a: User, customer_a: Customer, compressor: AssetModel
) -> None:
    from tests.fleet.test_health import put_hours

    HealthRule.objects.create(
        asset_model=compressor, name="Oil temperature heading for 85 °C", metric="temp_c", kind="trend",
        comparison="gt", limit=Decimal("85"), horizon_hours=24, lookback_hours=48,
    )  # fmt: skip
    calm = install(customer_a, compressor, "A-CALM").asset  # sorts first by name
    hot = install(customer_a, compressor, "Z-HOT").asset
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    put_hours(hot, "temp_c", [50 + 0.5 * i for i in range(48)], end=end)
    put_hours(calm, "temp_c", [60.0 + (i % 2) for i in range(48)], end=end)
    evaluate([hot.pk, calm.pk], end)

    login(page, asgi_server, viewer_a.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    for screen in SCREENS:
        on_screen(page, screen)
        page.goto(f"{asgi_server}/fleet/")
        rows = page.locator("#asset-table tbody tr")
        assert rows.first.get_attribute("data-asset-id") == str(calm.pk)
        page.select_option('select[name="sort"]', "risk")
        page.click('form.toolbar button[type="submit"]')
        page.wait_for_url("**/fleet/?*sort=risk*")
        assert rows.first.get_attribute("data-asset-id") == str(hot.pk)
        assert rows.first.locator("[data-risk]").get_attribute("data-risk") != "ok"
        assert_fits(page, f"fleet overview by risk at {screen['width']}")
        screenshot(page, f"fleet-overview-risk-{screen['width']}")
