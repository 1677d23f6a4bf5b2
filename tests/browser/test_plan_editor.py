"""The plan editor in a real browser: finance builds a graduated price, is told about a bad tier
next to the tiers, fixes it and saves; negotiated prices from the contract page."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from billing.models import Contract, Plan
from portal.models import User
from tests.factories import PASSWORD
from tests.integration import LAPTOP, PHONE, assert_fits, login, on_screen, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def fits(page: Any, width: int) -> None:
    on_screen(page, PHONE if width == PHONE["width"] else LAPTOP)
    assert_fits(page)


def test_finance_creates_a_graduated_plan_fixing_a_bad_tier(
    page: Any, asgi_server: str, finance: User, compressor: object
) -> None:
    login(page, asgi_server, finance.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/billing/plans/")
    page.click('[data-testid="new-plan"]')
    page.fill("#id_code", "energy-graduated")
    page.fill("#id_name", "Energy graduated")
    page.select_option("#id_currency", "EUR")
    page.fill("#id_period_fee", "99,90")
    component = page.locator('[data-component="c-0"]')
    assert not component.locator("[data-tiers]").is_visible()  # per unit: no tiers
    component.locator('select[name="c-0-metric"]').select_option("energy_kwh")
    assert "Energy (energy_kwh)" in component.locator('select[name="c-0-metric"]').inner_text()
    component.locator('select[name="c-0-charge_model"]').select_option("graduated")
    assert component.locator("[data-tiers]").is_visible()
    page.fill('[name="c-0-tier_0_up_to"]', "1000")
    page.fill('[name="c-0-tier_0_unit_price"]', "0,20")
    page.fill('[name="c-0-tier_1_up_to"]', "500")  # below the tier before: refused
    page.fill('[name="c-0-tier_1_unit_price"]', "0.15")
    page.fill('[name="c-0-tier_2_unit_price"]', "0.10")
    page.click('[data-testid="save-plan"]')

    error = page.locator('[data-component="c-0"] [data-testid="tier-error"]')
    error.wait_for()
    assert error.inner_text() == "Tier bounds must increase and be above zero."
    assert not Plan.objects.filter(code="energy-graduated").exists()
    assert page.input_value('[name="c-0-tier_0_unit_price"]') == "0,20"  # kept as typed
    screenshot(page, "plan-editor-tier-error")
    fits(page, 390)
    screenshot(page, "plan-editor-tier-error-390")
    fits(page, 1366)

    # The fix: the right bound, and one more tier on a row added in the page.
    page.fill('[name="c-0-tier_1_up_to"]', "5000")
    rows = page.locator('[data-component="c-0"] [data-tier-row]')
    before = rows.count()
    page.click('[data-component="c-0"] [data-add-tier]')
    assert rows.count() == before + 1
    page.fill('[name="c-0-tier_2_up_to"]', "10000")
    page.fill(f'[name="c-0-tier_{before}_unit_price"]', "0,08")
    page.click('[data-testid="save-plan"]')
    page.wait_for_selector("text=Plan Energy graduated created.")

    plan = Plan.objects.get(code="energy-graduated")
    assert plan.period_fee == Decimal("99.90")
    assert plan.components.get().tiers == [
        {"up_to": "1000", "unit_price": "0.20", "flat_fee": "0"},
        {"up_to": "5000", "unit_price": "0.15", "flat_fee": "0"},
        {"up_to": "10000", "unit_price": "0.10", "flat_fee": "0"},
        {"up_to": None, "unit_price": "0.08", "flat_fee": "0"},
    ]
    assert page.inner_text('[data-testid="plan-version"]') == "version 1"
    screenshot(page, "plan-detail")
    fits(page, 390)
    fits(page, 1366)


def test_finance_negotiates_a_price_from_the_contract_page(
    page: Any, asgi_server: str, finance: User, contract_a: Contract
) -> None:
    login(page, asgi_server, finance.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/billing/contracts/{contract_a.pk}/")
    page.click('[data-testid="edit-overrides"]')
    page.select_option('select[name="o-metric"]', "run_hours")
    page.fill('[name="o-unit_price"]', "0,35")
    page.fill('[name="o-note"]', "Negotiated 2026-09")
    screenshot(page, "contract-overrides-edit")
    fits(page, 390)
    fits(page, 1366)
    page.click('[data-testid="save-override"]')
    page.wait_for_selector("text=Negotiated price for Run hours saved")
    assert "Negotiated 2026-09" in page.inner_text('[data-testid="negotiated-prices"]')
    assert contract_a.price_overrides.get().unit_price == Decimal("0.35")
    screenshot(page, "contract-negotiated-prices")
