"""A customer admin tightens an alarm threshold on the asset page; the real worker then raises
at it. The pages fit a laptop and a phone."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from fleet.models import Alarm, AlarmRule, AssetModel, AssetThreshold
from portal.models import AuditEntry, Customer, User
from tests.factories import PASSWORD
from tests.fleet.conftest import install
from tests.integration import SCREENS, assert_fits, login, on_screen, post_ingest, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_customer_admin_tightens_a_threshold_on_the_asset_page(
    page: Any,
    asgi_server: str,
    live_worker: Any,
    admin_a: User,
    customer_a: Customer,
    compressor: AssetModel,
) -> None:
    rule = AlarmRule.objects.create(
        asset_model=compressor, name="Too hot", metric="temp_c", comparison="gt",
        threshold=Decimal("95"), for_seconds=0, severity="critical",
    )  # fmt: skip
    mine = install(customer_a, compressor, "THR-A1")
    login(page, asgi_server, admin_a.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/fleet/assets/{mine.asset.pk}/")
    panel = page.locator('[data-panel="thresholds"]')
    row = panel.locator(f'[data-rule-id="{rule.pk}"]')
    assert "Model: 95.0\u00a0°C" in row.inner_text()
    assert "no own threshold" in row.inner_text()

    # A looser value is refused, with the error next to the field.
    row.locator('input[name="threshold"]').fill("99")
    row.locator('button:has-text("Set")').click()
    page.wait_for_selector(".field-invalid")
    assert "The model allows at most 95" in page.locator(".field-invalid .error").inner_text()
    for screen in SCREENS:
        on_screen(page, screen)
        assert_fits(page, ("threshold page", screen))
    screenshot(page, "threshold-refused")
    assert not AssetThreshold.objects.exists()

    # A tighter one is taken, shown on the asset page and audited.
    page.fill('input[name="threshold"]', "85.5")
    page.click('button:has-text("Set")')
    page.wait_for_url(f"{asgi_server}/fleet/assets/{mine.asset.pk}/")
    assert "this asset: 85.5\u00a0°C" in row.inner_text()
    assert row.locator("[data-effective]").inner_text() == "85.5\u00a0°C"
    entry = AuditEntry.objects.get(action="threshold.set")
    assert (entry.data["old"], entry.data["new"], entry.actor_id) == (None, "85.5", admin_a.pk)
    for screen in SCREENS:
        on_screen(page, screen)
        assert_fits(page, ("asset page", screen))
        screenshot(page, f"threshold-asset-page-{screen['width']}")

    # The real worker raises at the asset's own threshold: 85 is not above 85.5, 86 is.
    now = datetime.now(UTC).isoformat()
    assert (
        post_ingest(asgi_server, mine.token, {"seq": 1, "ts": now, "status": "ok", "metrics": {"temp_c": 85}})
        == 202
    )
    assert (
        post_ingest(asgi_server, mine.token, {"seq": 2, "ts": now, "status": "ok", "metrics": {"temp_c": 86}})
        == 202
    )
    deadline = time.monotonic() + 20
    while not Alarm.objects.filter(asset=mine.asset).exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    (alarm,) = Alarm.objects.filter(asset=mine.asset)
    assert alarm.value == Decimal("86")
    # The open page reloads itself when the alarm is raised (asset-page.js) and then shows it.
    page.locator("#alarms-h + ul.alarms", has_text="the asset's own").wait_for(timeout=20_000)
    screenshot(page, "threshold-alarm-raised")
