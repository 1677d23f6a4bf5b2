"""The billing identity in a real browser: finance fixes a typo'd VAT ID on the page; the pages
that show the identity fit a laptop and a phone without sideways scrolling or console errors."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from billing.invoicing import bill_period
from billing.models import Contract, Invoice
from portal.models import Customer, User
from tests.billing_fixtures import usage
from tests.browser.forms import fill_identity
from tests.factories import PASSWORD
from tests.fleet_fixtures import Installed
from tests.integration import assert_fits, login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WIDTHS = (1366, 390)


def test_finance_corrects_a_vat_id_and_every_identity_page_fits(
    page: Any,
    asgi_server: str,
    finance: User,
    admin_a: User,
    customer_a: Customer,
    contract_a: Contract,
    fleet_a: Installed,
) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    usage(fleet_a.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "2000")
    bill_period("2026-10", now=datetime(2026, 11, 5, tzinfo=UTC))
    invoice = Invoice.objects.get(contract=contract_a)
    page.set_viewport_size({"width": 1366, "height": 768})
    login(page, asgi_server, finance.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")

    page.goto(f"{asgi_server}/customers/{customer_a.pk}/")
    page.click('[data-testid="edit-identity"]')
    fill_identity(
        page,
        legal_name="Alpha Dairy GmbH",
        address_line1="Milchstraße 4",
        postal_code="20095",
        city="Hamburg",
        country="DE",
        vat_id="DE136695977",
        tax_rate="6.25",
        locale="de-DE",
    )
    page.click('[data-testid="save-identity"]')
    page.wait_for_selector("text=check digit is wrong")
    screenshot(page, "identity-vat-error")
    assert Customer.objects.get(pk=customer_a.pk).legal_name == ""
    page.fill("input[name=vat_id]", "DE136695976")
    page.click('[data-testid="save-identity"]')
    page.wait_for_selector("text=billing identity is saved")
    assert page.inner_text('[data-field="tax_rate"]') == "6.25\u00a0%"

    pages = {
        "identity-form": f"/customers/{customer_a.pk}/billing/",
        "identity-customer": f"/customers/{customer_a.pk}/",
        "identity-customers": "/customers/",
        "identity-invoice-draft": f"/billing/invoices/{invoice.pk}/",
    }
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 844 if width < 500 else 768})
        for name, path in pages.items():
            page.goto(f"{asgi_server}{path}")
            screenshot(page, f"{name}-{width}")
            assert_fits(page)
        # The contract page's own tables are another change's; its terms (ours) fit.
        page.goto(f"{asgi_server}/billing/contracts/{contract_a.pk}/")
        screenshot(page, f"identity-contract-{width}")
        billed_to = page.locator('[data-testid="contract-billed-to"]')
        assert "Alpha Dairy GmbH" in billed_to.inner_text()
        box = billed_to.bounding_box()
        assert box["x"] + box["width"] <= width

    page.context.clear_cookies()
    page.set_viewport_size({"width": 1366, "height": 768})
    login(page, asgi_server, admin_a.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 844 if width < 500 else 768})
        page.goto(f"{asgi_server}/accounts/profile/")
        assert "DE136695976" in page.inner_text('[data-testid="billing-identity"]')
        assert_fits(page)
        screenshot(page, f"identity-profile-{width}")
    assert errors == []
