"""The invoice's documents in a real browser: a customer admin finds the Factur-X PDF, the XML
and each credit note's documents on the invoice page, downloads them, and the page fits a
laptop and a phone without sideways scrolling or console errors."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import facturx
import pytest

from billing import services
from billing.invoicing import bill_period
from billing.models import Contract, Invoice
from portal.models import Customer, User
from tests.billing_fixtures import usage
from tests.factories import PASSWORD
from tests.fleet_fixtures import Installed
from tests.integration import SCREENS, assert_fits, login, on_screen, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_customer_admin_downloads_the_e_invoice_and_the_credit_notes_documents(
    page: Any, asgi_server: str, admin_a: User, customer_a: Customer, contract_a: Contract, fleet_a: Installed
) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    Customer.objects.filter(pk=customer_a.pk).update(
        legal_name="Alpha Dairy GmbH", address_line1="Milchstraße 4", postal_code="20095", city="Hamburg",
        country="DE", vat_id="DE136695976", locale="de-DE",
    )  # fmt: skip
    usage(fleet_a.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "2000")
    bill_period("2026-10", now=datetime(2026, 11, 5, tzinfo=UTC))
    invoice = services.invoice_finalize(actor=None, invoice=Invoice.objects.get(contract=contract_a))
    note = services.credit_note_create(actor=None, invoice=invoice, amount=Decimal("25"), reason="Downtime")
    page.set_viewport_size({"width": 1366, "height": 768})
    login(page, asgi_server, admin_a.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")

    page.goto(f"{asgi_server}/billing/invoices/{invoice.pk}/")
    documents = page.locator('[data-testid="documents"]')
    with page.expect_download() as xml_download:
        documents.locator('[data-testid="doc-xml"]').click()
    xml = Path(xml_download.value.path()).read_bytes()
    with page.expect_download() as pdf_download:
        documents.locator('[data-testid="doc-pdf"]').click()
    pdf = Path(pdf_download.value.path()).read_bytes()
    with page.expect_download() as note_download:
        documents.get_by_role("link", name=f"{note.number}.xml").click()
    note_xml = Path(note_download.value.path()).read_bytes()

    assert xml_download.value.suggested_filename == f"{invoice.number}.xml"
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
    assert facturx.get_xml_from_pdf(pdf, check_xsd=True) == ("factur-x.xml", xml)
    assert b"<ram:TypeCode>381</ram:TypeCode>" in note_xml
    for screen in SCREENS:
        on_screen(page, screen)
        documents.scroll_into_view_if_needed()
        assert_fits(page)
        screenshot(page, f"einvoice-documents-{screen['width']}")
    assert errors == []
