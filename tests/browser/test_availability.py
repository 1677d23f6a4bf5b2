"""A customer reads the availability statement of a month: every down interval and what was
excluded, the figure and the credit; the page fits a laptop and a phone with no console error."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from billing.models import Plan
from fleet.exclusions import exclusion_mark
from fleet.models import MaintenanceWindow, StatusExclusion
from portal.models import Customer, User
from tests.billing_fixtures import contract_for, status_change
from tests.factories import PASSWORD
from tests.fleet_fixtures import Installed
from tests.integration import SCREENS, assert_fits, login, on_screen, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 10, day, hour, tzinfo=UTC)


def test_a_customer_reads_the_availability_statement(
    page: Any, asgi_server: str, viewer_a: User, support: User, customer_a: Customer, plan: Plan,
    fleet_a: Installed,
) -> None:  # fmt: skip
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    asset = fleet_a.asset
    contract = contract_for(customer_a, plan, asset, date(2026, 1, 1), exclude_customer_stops=True)
    status_change(asset, "online", datetime(2026, 9, 1, tzinfo=UTC), previous="never_seen")
    status_change(asset, "fault", at(5, 10))
    status_change(asset, "online", at(5, 16), previous="fault")
    status_change(asset, "offline", at(12, 6))
    status_change(asset, "online", at(12, 10), previous="offline")
    status_change(asset, "offline", at(20, 0))
    status_change(asset, "online", at(20, 5), previous="offline")
    MaintenanceWindow.objects.create(
        customer=customer_a, title="Compressor overhaul with a long title for a narrow phone screen",
        starts_at=at(12, 7), ends_at=at(12, 11),
    )  # fmt: skip
    exclusion_mark(
        actor=support, asset=asset, starts_at=at(20, 0), ends_at=at(20, 4),
        reason="Plant shut down by the customer for the autumn holiday",
    )  # fmt: skip

    login(page, asgi_server, viewer_a.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/billing/contracts/{contract.pk}/")
    page.click("text=Statement")
    page.wait_for_url("**/availability/**")
    page.goto(f"{asgi_server}/billing/contracts/{contract.pk}/availability/?period=2026-10")

    rows = page.locator('[data-testid="down-intervals"] tbody tr')
    assert rows.count() == 3
    assert "Oct 5, 2026, 12:00" in rows.nth(0).inner_text()  # 10:00 UTC in Berlin
    assert "Compressor overhaul" in rows.nth(1).inner_text()
    assert "autumn holiday" in rows.nth(2).inner_text()
    summary = page.locator('[data-testid="availability-summary"]').inner_text()
    assert "98" in summary
    assert "9145" in summary
    for screen in SCREENS:
        on_screen(page, screen)
        assert_fits(page, ("availability statement", screen))
        screenshot(page, f"availability-statement-{screen['width']}")
    with page.expect_download() as download:
        page.click('[data-testid="statement-pdf"]')
    assert download.value.suggested_filename == f"availability-{contract.number}-2026-10.pdf"
    assert errors == []


def test_support_marks_a_customer_stop_on_the_asset_page(
    page: Any, asgi_server: str, support: User, fleet_a: Installed
) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    login(page, asgi_server, support.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/fleet/assets/{fleet_a.asset.pk}/")
    panel = page.locator('[data-panel="exclusions"]')
    for screen in SCREENS:
        on_screen(page, screen)
        assert_fits(page, ("asset page with the stops panel", screen))
    panel.locator('input[name="starts_at"]').fill("2026-10-20T02:00")
    panel.locator('input[name="ends_at"]').fill("2026-10-20T06:00")
    panel.locator('input[name="reason"]').fill("Customer cut the power for works")
    panel.locator('button:has-text("Mark as caused by the customer")').click()
    page.wait_for_selector("text=Customer cut the power for works")

    stop = StatusExclusion.objects.get()
    assert stop.ends_at - stop.starts_at == timedelta(hours=4)
    assert stop.created_by == support
    screenshot(page, "asset-customer-stop-390")
    assert errors == []
