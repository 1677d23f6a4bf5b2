"""Maintenance windows in real browsers: support plans one from the asset page; the customer's
admin finds it on the asset page and on the calendar list. Every page fits both screens."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from fleet.models import MaintenanceWindow
from portal.models import User
from tests.factories import PASSWORD
from tests.fleet_fixtures import Installed
from tests.integration import (
    SCREENS,
    assert_fits,
    assert_no_csp_violations,
    login,
    on_screen,
    screenshot,
    watch_csp,
)

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _console_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def _fits_everywhere(page: Any, name: str) -> None:
    for screen in SCREENS:
        on_screen(page, screen)
        assert_fits(page, (name, screen))
        screenshot(page, f"{name}-{screen['width']}")


def test_support_plans_a_window_and_the_customer_admin_sees_it(
    browser: Any, page: Any, asgi_server: str, support: User, admin_a: User, fleet_a: Installed
) -> None:
    errors = _console_errors(page)
    day = (timezone.now() + timedelta(days=2)).date().isoformat()
    login(page, asgi_server, support.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/fleet/assets/{fleet_a.asset.pk}/")
    page.click('[data-testid="asset-windows"] >> text=Plan a window')
    page.wait_for_selector('[data-testid="window-form"]')
    _fits_everywhere(page, "window-new")
    page.fill("input[name=title]", "Yearly compressor overhaul")
    page.fill("textarea[name=reason]", "Replace the oil separator.")
    page.fill("input[name=starts_at]", f"{day}T10:00")
    page.fill("input[name=ends_at]", f"{day}T09:00")  # before the start: refused next to the field
    page.click('[data-testid="window-form"] button[type=submit]')
    page.wait_for_selector("text=The window must end after it starts.")
    page.fill("input[name=ends_at]", f"{day}T12:00")
    page.click('[data-testid="window-form"] button[type=submit]')
    page.wait_for_selector('[data-testid="window-status"]')
    window = MaintenanceWindow.objects.get()
    assert list(window.assets.values_list("pk", flat=True)) == [fleet_a.asset.pk]
    _fits_everywhere(page, "window-detail-support")
    assert not errors, errors

    customer_context = browser.new_context(viewport={"width": 1366, "height": 768})
    violations = watch_csp(customer_context)
    customer = customer_context.new_page()
    customer.set_default_timeout(15_000)
    customer_errors = _console_errors(customer)
    try:
        login(customer, asgi_server, admin_a.email, PASSWORD)
        customer.wait_for_url(f"{asgi_server}/")
        customer.goto(f"{asgi_server}/fleet/assets/{fleet_a.asset.pk}/")
        panel = customer.inner_text('[data-testid="asset-windows"]')
        assert "Yearly compressor overhaul" in panel
        assert "Plan a window" not in panel  # customers read only
        _fits_everywhere(customer, "window-asset-page-customer")
        on_screen(customer, SCREENS[0])
        customer.locator(".mainnav summary", has_text="Fleet").click()  # its menu (docs/frontend.md)
        customer.click('.mainnav a[href="/fleet/maintenance/"]')  # the menu entry
        customer.wait_for_url(f"{asgi_server}/fleet/maintenance/")
        assert "Yearly compressor overhaul" in customer.inner_text(f'[data-window-id="{window.pk}"]')
        _fits_everywhere(customer, "window-calendar-customer")
        customer.click("text=Yearly compressor overhaul")
        customer.wait_for_selector("text=Replace the oil separator.")
        assert customer.query_selector("text=Cancel window") is None
        _fits_everywhere(customer, "window-detail-customer")
        assert_no_csp_violations(customer, violations)
        assert not customer_errors, customer_errors
    finally:
        customer_context.close()
