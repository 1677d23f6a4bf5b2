"""Chromium against a real ASGI server: logging in, the role's home, the tenant's own data only."""

from __future__ import annotations

from typing import Any

import pytest

from portal.models import Customer, User
from portal.roles import Role
from tests.factories import PASSWORD
from tests.integration import assert_fits, assert_no_csp_violations, login, screenshot, watch_csp

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_customer_viewer_sees_their_customer_and_not_the_other(
    page: Any, asgi_server: str, viewer_a: User, customer_a: Customer, customer_b: Customer
) -> None:
    page.goto(f"{asgi_server}/accounts/login/")
    screenshot(page, "login")
    login(page, asgi_server, viewer_a.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    heading = page.get_by_test_id("home-heading")
    assert heading.inner_text() == customer_a.name
    assert page.get_by_test_id("tenant-name").inner_text() == customer_a.name
    assert "Alpha plant" in page.content()
    text = page.inner_text("body")
    assert customer_b.name not in text
    assert "Bravo brewhouse" not in text
    screenshot(page, "home-customer-viewer")

    page.goto(f"{asgi_server}/sites/")
    assert "Alpha plant" in page.inner_text("main")
    assert "Bravo brewhouse" not in page.inner_text("main")
    screenshot(page, "sites-customer-viewer")


def test_wrong_password_shows_an_error(page: Any, asgi_server: str, viewer_a: User) -> None:
    login(page, asgi_server, viewer_a.email, "not-the-password")
    assert page.get_by_role("alert").is_visible()
    assert page.url.endswith("/accounts/login/")


@pytest.mark.parametrize(
    ("role", "heading"),
    [
        (Role.CUSTOMER_ADMIN, "Alpha Dairy"),
        (Role.SUPPORT, "Support desk"),
        (Role.FINANCE, "Finance"),
        (Role.OPERATOR, "Operations"),
    ],
    ids=str,
)
def test_each_role_lands_on_its_home(
    page: Any, asgi_server: str, cast: dict[str, User], role: Role, heading: str
) -> None:
    login(page, asgi_server, cast[role].email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    assert page.get_by_test_id("home-heading").inner_text() == heading
    screenshot(page, f"home-{role}")


def test_phone_width_menu_opens(browser: Any, asgi_server: str, admin_a: User) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    violations = watch_csp(context)
    page = context.new_page()
    try:
        login(page, asgi_server, admin_a.email, PASSWORD)
        page.wait_for_url(f"{asgi_server}/")
        users_link = page.get_by_role("link", name="Users")
        assert not users_link.is_visible()  # folded away at phone width
        page.click("label.nav-toggle-label")
        page.locator(".mainnav summary", has_text="Admin").click()  # the admin's menu (docs/frontend.md)
        assert users_link.is_visible()
        # Nothing is wider than the screen.
        assert_fits(page)
        screenshot(page, "home-customer-admin-phone")
        assert_no_csp_violations(page, violations)
    finally:
        context.close()
