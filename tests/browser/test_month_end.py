"""Month end in a real browser, as finance does it: finalize (after a Cancel), a partial payment,
a credit note, the rest paid — and every amount on the page, in the PDFs (read back as text)
and in the CSV export has exactly the currency's decimals and adds up (issue 14's "done when")."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pypdf import PdfReader

from billing.invoicing import bill_period
from billing.models import Contract, CreditNote, Invoice, InvoiceStatus, Payment
from portal.models import Customer, User
from tests.billing_fixtures import usage
from tests.factories import PASSWORD
from tests.fleet_fixtures import Installed
from tests.integration import login, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PLAIN = re.compile(r"^[-−]?\d{1,3}(,\d{3})*\.\d{2}$")  # en: 1,234.50 — two decimals, no more
EURO = re.compile(r"^[-−]?€\d{1,3}(,\d{3})*\.\d{2}$")
TOO_PRECISE = re.compile(r"\d\.\d{3,}")  # a float artefact or an unrounded quantity


def _decimal(text: str) -> Decimal:
    return Decimal(text.replace("€", "").replace(",", "").replace("−", "-").strip())


def _confirm(page: Any, button: str) -> None:
    page.click(button)
    page.locator('[data-testid="confirm-dialog"]').wait_for(state="visible")
    page.click('[data-testid="confirm-ok"]')


def _page_adds_up(page: Any) -> Decimal:
    """The lines sum to the subtotal, subtotal + tax is the total; every amount has 2 decimals."""
    amounts = page.locator('#lines [data-col="amount"]').all_inner_texts()
    assert amounts
    assert all(PLAIN.match(a.strip()) for a in amounts), amounts
    subtotal = page.inner_text('[data-testid="subtotal"]').strip()
    tax = page.inner_text('[data-testid="tax"]').strip()
    total = page.inner_text('[data-testid="total"]').strip()
    assert PLAIN.match(subtotal)
    assert PLAIN.match(tax)
    assert EURO.match(total)
    assert sum(_decimal(a) for a in amounts) == _decimal(subtotal)
    assert _decimal(subtotal) + _decimal(tax) == _decimal(total)
    assert not TOO_PRECISE.search(page.inner_text("#lines"))
    return _decimal(total)


def _pdf_text(page: Any, url: str) -> str:
    answer = page.request.get(url)
    assert answer.status == 200, url
    return "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(answer.body())).pages)


def test_finance_closes_a_month_and_every_figure_adds_up(
    page: Any, asgi_server: str, finance: User, customer_a: Customer, contract_a: Contract, fleet_a: Installed
) -> None:
    customer_a.legal_name, customer_a.vat_id, customer_a.country = "Acme Cooling GmbH", "DE136695976", "DE"
    customer_a.address_line1, customer_a.postal_code, customer_a.city = "Ringstraße 2", "10115", "Berlin"
    customer_a.save()
    contract_a.purchase_order = "PO-4711"
    contract_a.save()
    usage(fleet_a.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "10.3333")  # billed as 10.33 h
    usage(fleet_a.asset, datetime(2026, 10, 4, 10, tzinfo=UTC), "1234.56", metric="energy_kwh")
    bill_period("2026-10", now=datetime(2026, 11, 5, tzinfo=UTC))
    invoice = Invoice.objects.get(contract=contract_a)

    login(page, asgi_server, finance.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/billing/invoices/{invoice.pk}/")
    total = _page_adds_up(page)
    assert total == invoice.total

    # Finalize asks first; Cancel leaves a draft.
    page.click('[data-testid="finalize"]')
    dialog = page.locator('[data-testid="confirm-dialog"]')
    dialog.wait_for(state="visible")
    assert "Finalize this invoice?" in dialog.inner_text()
    page.click('[data-testid="confirm-cancel"]')
    dialog.wait_for(state="hidden")
    page.wait_for_timeout(300)
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.DRAFT
    _confirm(page, '[data-testid="finalize"]')
    page.wait_for_selector("text=Finalized as INV-")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.FINALIZED
    assert page.inner_text('[data-testid="amount-due"]') == f"€{invoice.total:,}"

    # A partial payment.
    page.fill("#pay-amount", "50.00")
    page.fill("#pay-reference", "SEPA-1")
    _confirm(page, '[data-testid="record-payment"]')
    page.wait_for_selector("text=Payment of €50.00 recorded.")
    assert _decimal(page.inner_text('[data-testid="amount-due"]')) == invoice.total - Decimal("50.00")

    # A credit note of 10.00 net: 11.90 with 19 % tax comes off the amount due.
    page.fill("#cn-amount", "10.00")
    page.fill("#cn-reason", "Goodwill for the October outage")
    _confirm(page, '[data-testid="issue-credit-note"]')
    page.wait_for_selector("text=Credit note CN-")
    note = CreditNote.objects.get(invoice=invoice)
    assert (note.amount, note.tax, note.total) == (Decimal("10.00"), Decimal("1.90"), Decimal("11.90"))
    due = invoice.total - Decimal("50.00") - Decimal("11.90")
    assert _decimal(page.inner_text('[data-testid="amount-due"]')) == due
    assert page.input_value("#pay-amount") == str(due)  # the rest, by default

    # The rest: paid.
    _confirm(page, '[data-testid="record-payment"]')
    page.wait_for_selector("text=The invoice is paid.")
    assert page.inner_text('[data-testid="invoice-status"]') == "Paid"
    assert page.inner_text('[data-testid="amount-due"]') == "€0.00"
    assert _page_adds_up(page) == invoice.total
    for cell in page.locator('[data-testid="payment-row"] td.num').all_inner_texts():
        assert EURO.match(cell.strip()), cell
    screenshot(page, "billing-month-end-paid")
    assert sum(p.amount for p in Payment.objects.filter(invoice=invoice)) + note.total == invoice.total

    # The PDFs, read back: the buyer as finalized, the same figures, nothing over-precise.
    text = _pdf_text(page, f"{asgi_server}/api/v1/invoices/{invoice.pk}/pdf/")
    for expected in ("Acme Cooling GmbH", "DE136695976", "PO-4711", invoice.number or "?"):
        assert expected in text
    for amount in (invoice.subtotal, invoice.tax, invoice.total):
        assert f"{amount:,}" in text, amount
    assert not TOO_PRECISE.search(text)
    note_text = _pdf_text(page, f"{asgi_server}/api/v1/credit-notes/{note.pk}/pdf/")
    for expected in (note.number, invoice.number or "?", "11.90", "1.90", "10.00"):
        assert expected in note_text
    assert not TOO_PRECISE.search(note_text)

    # The CSV: lines, the credit note and both payments; each amount has two decimals and the
    # records add up to the invoice's totals and its amount due.
    answer = page.request.get(f"{asgi_server}/api/v1/invoices/export.csv?period=2026-10")
    assert answer.status == 200
    rows = list(csv.DictReader(io.StringIO(answer.text())))
    assert {r["record"] for r in rows} == {"invoice_line", "credit_note", "payment"}
    for row in rows:
        for column in ("amount", "invoice_subtotal", "invoice_tax", "invoice_total", "amount_due"):
            assert re.fullmatch(r"-?\d+\.\d{2}", row[column]), (column, row[column])
    lines = [r for r in rows if r["record"] == "invoice_line"]
    assert sum(Decimal(r["amount"]) for r in lines) == Decimal(lines[0]["invoice_subtotal"])
    credited = sum(Decimal(r["total"]) for r in rows if r["record"] == "credit_note")
    paid = sum(Decimal(r["amount"]) for r in rows if r["record"] == "payment")
    assert (credited, paid) == (Decimal("11.90"), invoice.total - Decimal("11.90"))
    assert Decimal(rows[0]["invoice_total"]) - credited - paid == Decimal(rows[0]["amount_due"]) == 0
