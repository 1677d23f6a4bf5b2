"""Onboarding end to end in Chromium (issue 16): an operator onboards a new customer through
every step in the portal, never the admin; the device's token, copied from the shown-once page,
authenticates a heartbeat that a real uvicorn admits and a real Celery worker drains, and the
new machine turns live on the fleet page, for the operator and for the invited admin, who set
their password from the invitation e-mail."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from fleet.models import AssetModel, Device
from portal.models import Customer, User
from tests.browser.forms import fill_identity
from tests.factories import PASSWORD
from tests.integration import LAPTOP, PHONE, assert_fits, login, on_screen, post_ingest, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "Milch-und-Kaese-2026"
REFUSED = "Failed to load resource: the server responded with a status of 400 (Bad Request)"


_MAIN_OVERFLOW = """() => {
  const main = document.querySelector("main");
  return [main.scrollWidth - main.clientWidth, main.getBoundingClientRect().right - innerWidth];
}"""


def _content_fits(page: Any, name: str) -> None:
    """The page's own content (the <main>) scrolls nowhere sideways and ends inside the window.
    (The whole page at 1366 px waits for the navigation of issue 16, which is not this flow's.)"""
    overflow, beyond = page.evaluate(_MAIN_OVERFLOW)
    assert overflow <= 0, (name, page.viewport_size, overflow)
    assert beyond <= 0, (name, page.viewport_size, beyond)


def _fits(page: Any, name: str) -> None:
    """The page fits a 390 px phone (the whole page: nothing scrolls sideways) with its action
    button inside the width, and its content fits 1366 px."""
    on_screen(page, PHONE)
    assert_fits(page, name)
    _content_fits(page, name)
    button = page.locator('[data-testid="step-submit"], #copy-token, [data-testid="onboarding-actions"] a')
    box = button.first.bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= PHONE["width"], name
    screenshot(page, f"onboarding-{name}-phone")
    on_screen(page, LAPTOP)
    _content_fits(page, name)
    screenshot(page, f"onboarding-{name}")


def _main_links(page: Any) -> list[str]:
    return [
        str(h)
        for h in page.eval_on_selector_all("main a[href]", "els => els.map(e => e.getAttribute('href'))")
    ]


def _invitation_link(mail_dir: Path, email: str, timeout: float = 30) -> str:
    """The set-password link of the invitation the worker wrote (Django's file backend)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in mail_dir.glob("*.log"):
            text = path.read_text(errors="replace")
            for message in text.split("-" * 79):
                if f"To: {email}" in message and "invited" in message:
                    found = re.search(r"https?://\S+/accounts/reset/\S+/", message)
                    if found:
                        return found.group(0)
        time.sleep(0.2)
    raise AssertionError(f"no invitation e-mail to {email} in {mail_dir}")


def _watch_live(page: Any, base: str, asset_pk: str) -> None:
    page.goto(f"{base}/fleet/")
    page.wait_for_selector('[data-live-state="live"]')
    row = page.locator(f'tr[data-asset-id="{asset_pk}"]')
    assert row.locator('[data-field="status"]').inner_text() == "Never seen"
    page.evaluate("window.__noReload = 1")


def test_an_operator_onboards_a_customer_whose_first_heartbeat_shows_live(
    page: Any,
    browser: Any,
    asgi_server: str,
    live_worker: Any,
    mail_dir: Path,
    operator: User,
    customer_b: Customer,
    compressor: AssetModel,
) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=asgi_server)
    on_screen(page, LAPTOP)
    login(page, asgi_server, operator.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")

    # The customer: refused with the error next to its field, then created.
    page.goto(f"{asgi_server}/customers/")
    page.click('[data-testid="onboard-customer"]')
    page.wait_for_url(f"{asgi_server}/customers/onboard/")
    _fits(page, "customer")
    page.fill("input[name=name]", "Delta Foods")
    page.select_option("select[name=time_zone]", "Europe/Vienna")
    fill_identity(
        page,
        legal_name="Delta Foods GmbH",
        address_line1="Ringstraße 1",
        postal_code="1010",
        city="Wien",
        country="AT",
        tax_rate="twenty",
        locale="de-AT",
    )
    page.click('[data-testid="step-submit"]')
    assert page.locator(".field-invalid input[name=tax_rate]").count() == 1
    assert not Customer.objects.filter(name="Delta Foods").exists()
    screenshot(page, "onboarding-customer-error")
    page.fill("input[name=tax_rate]", "20")
    page.click('[data-testid="step-submit"]')
    page.wait_for_url(re.compile(r".*/onboard/site/$"))
    customer = Customer.objects.get(name="Delta Foods")
    assert (str(customer.tax_rate), customer.time_zone) == ("0.2000", "Europe/Vienna")

    # The site: its time zone the customer's unless chosen.
    _fits(page, "site")
    assert "Europe/Vienna" in page.inner_text("select[name=time_zone] option:checked")
    page.fill("input[name=name]", "Werk Simmering")
    page.click('[data-testid="step-submit"]')

    # The asset: only this customer's site on offer.
    page.wait_for_url(re.compile(r".*/onboard/asset/$"))
    _fits(page, "asset")
    assert page.locator("select[name=site] option").all_inner_texts() == ["Werk Simmering"]
    page.select_option("select[name=model]", label="Test compressor")
    page.fill("input[name=serial_number]", "DF-0001")
    page.fill("input[name=name]", "Kompressor 1")
    page.click('[data-testid="step-submit"]')

    # The device: its token shown once, copied with the button.
    page.wait_for_url(re.compile(r".*/onboard/device/$"))
    _fits(page, "device")
    page.fill("input[name=serial_number]", "GW-DF-0001")
    page.click('[data-testid="step-submit"]')
    page.wait_for_selector('[data-testid="device-token"]')
    page.click("#copy-token")
    page.wait_for_selector("#copy-state:has-text('Copied')")
    token = page.evaluate("navigator.clipboard.readText()")
    assert token == page.input_value('[data-testid="device-token"]')
    assert token.startswith("fpd_")
    _fits(page, "token")
    device = Device.objects.select_related("asset").get(serial_number="GW-DF-0001")
    assert device.asset.customer_id == customer.pk

    # The admin's invitation; the operator lands on the customer's overview, in the portal.
    page.click('[data-testid="step-next"]')
    page.wait_for_url(re.compile(r".*/onboard/invite/$"))
    _fits(page, "invite")
    page.fill("input[name=email]", "chefin@delta.test")
    page.fill("input[name=full_name]", "Dora Delta")
    page.click('[data-testid="step-submit"]')
    page.wait_for_url(f"{asgi_server}/customers/{customer.pk}/")
    assert "invitation pending" in page.inner_text('[data-testid="overview-users"]')
    assert page.locator(f'a[href="/fleet/assets/{device.asset_id}/"]').count() == 1
    _fits(page, "overview")
    assert not [href for href in _main_links(page) if href.startswith("/admin/")]
    assert customer_b.name not in page.inner_text("main")

    # The invited admin sets their password from the e-mail and watches the fleet too.
    link = _invitation_link(mail_dir, "chefin@delta.test")
    admin_context = browser.new_context(viewport=LAPTOP)
    admin = admin_context.new_page()
    # The link's host is PORTAL_BASE_URL's; this server listens elsewhere.
    admin.goto(asgi_server + urlsplit(link).path)
    admin.wait_for_selector("input[name=new_password1]")
    admin.fill("input[name=new_password1]", NEW_PASSWORD)
    admin.fill("input[name=new_password2]", NEW_PASSWORD)
    admin.click("button[type=submit]")
    login(admin, asgi_server, "chefin@delta.test", NEW_PASSWORD)
    admin.wait_for_url(f"{asgi_server}/")
    _watch_live(admin, asgi_server, str(device.asset_id))
    _watch_live(page, asgi_server, str(device.asset_id))

    body = {"seq": 1, "ts": datetime.now(UTC).isoformat(), "status": "ok", "metrics": {"temp_c": 64.5}}
    assert post_ingest(asgi_server, token, body) == 202
    for viewer in (page, admin):
        viewer.wait_for_function(
            f"""() => document.querySelector('tr[data-asset-id="{device.asset_id}"] [data-field="status"]')
                       .textContent.trim() === 'Online'""",
            timeout=20_000,
        )
        assert viewer.evaluate("window.__noReload") == 1
    screenshot(page, "onboarding-fleet-live")
    screenshot(admin, "onboarding-fleet-live-admin")
    admin_context.close()
    # The one refused step (tax "twenty") answered 400, which Chromium logs; nothing else.
    assert errors == [REFUSED], errors
