"""Finance records a partial then a full payment in a real browser; every such action asks
first in a <dialog> (static/js/confirm.js), and Cancel submits nothing."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from billing.models import Invoice, InvoiceStatus, Payment
from portal.models import User
from tests.factories import PASSWORD
from tests.integration import SCREENS, assert_fits, login, on_screen, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_finance_records_a_partial_then_a_full_payment(
    page: Any, asgi_server: str, finance: User, invoice_a: Invoice
) -> None:
    assert invoice_a.amount_due == Decimal("124.95")
    login(page, asgi_server, finance.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/billing/invoices/{invoice_a.pk}/")
    assert page.input_value("#pay-amount") == "124.95"  # the amount due by default
    assert page.input_value("#pay-received_on")  # today, in finance's zone

    # Cancel: the dialog closes and nothing is recorded.
    page.fill("#pay-amount", "100.00")
    page.click('[data-testid="record-payment"]')
    dialog = page.locator('[data-testid="confirm-dialog"]')
    dialog.wait_for(state="visible")
    assert "Record this payment" in dialog.inner_text()
    screenshot(page, "billing-payment-confirm")
    page.click('[data-testid="confirm-cancel"]')
    dialog.wait_for(state="hidden")
    page.wait_for_timeout(300)
    assert not Payment.objects.exists()
    assert page.input_value("#pay-amount") == "100.00"  # still on the page, as typed

    # Confirm: a partial payment.
    page.fill("#pay-reference", "BANK-1")
    page.click('[data-testid="record-payment"]')
    page.click('[data-testid="confirm-ok"]')
    page.wait_for_selector("text=Payment of €100.00 recorded. €24.95 still due.")
    assert page.inner_text('[data-testid="amount-due"]') == "€24.95"
    assert page.locator('[data-testid="payment-row"]').count() == 1
    assert page.input_value("#pay-amount") == "24.95"

    # The rest: the invoice is paid and takes no more payments.
    page.select_option("#pay-method", "card")
    page.click('[data-testid="record-payment"]')
    page.click('[data-testid="confirm-ok"]')
    page.wait_for_selector("text=Payment of €24.95 recorded. The invoice is paid.")
    assert page.inner_text('[data-testid="invoice-status"]') == "Paid"
    assert page.inner_text('[data-testid="amount-due"]') == "€0.00"
    assert page.locator('[data-testid="payment-row"]').count() == 2
    assert page.locator('[data-testid="payment-form"]').count() == 0
    screenshot(page, "billing-invoice-paid")

    invoice = Invoice.objects.get(pk=invoice_a.pk)
    assert (invoice.status, invoice.amount_due) == (InvoiceStatus.PAID, Decimal("0.00"))
    assert list(Payment.objects.order_by("created_at").values_list("amount", "method", "reference")) == [
        (Decimal("100.00"), "bank_transfer", "BANK-1"),
        (Decimal("24.95"), "card", ""),
    ]


def test_void_asks_first_and_escape_cancels(
    page: Any, asgi_server: str, finance: User, invoice_a: Invoice
) -> None:
    login(page, asgi_server, finance.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    page.goto(f"{asgi_server}/billing/invoices/{invoice_a.pk}/")
    page.fill("#void-reason", "Wrong plan")
    page.click('[data-testid="void"]')
    page.locator('[data-testid="confirm-dialog"]').wait_for(state="visible")
    page.keyboard.press("Escape")
    page.locator('[data-testid="confirm-dialog"]').wait_for(state="hidden")
    page.wait_for_timeout(300)
    assert Invoice.objects.get(pk=invoice_a.pk).status == InvoiceStatus.FINALIZED
    page.click('[data-testid="void"]')
    page.click('[data-testid="confirm-ok"]')
    page.wait_for_selector("text=Invoice voided.")
    assert Invoice.objects.get(pk=invoice_a.pk).status == InvoiceStatus.VOID


def test_the_payment_pages_fit_a_laptop_and_a_phone(
    page: Any, asgi_server: str, finance: User, invoice_a: Invoice
) -> None:
    from billing import payments

    payments.payment_record(
        actor=finance, invoice=invoice_a, amount=Decimal("24.95"), received_on=invoice_a.finalized_at.date(),  # type: ignore[union-attr]
        method="bank_transfer", reference="A long bank reference 2026-11 SEPA 0000000000000000",
    )  # fmt: skip
    Invoice.objects.filter(pk=invoice_a.pk).update(overdue_since=invoice_a.due_date)
    login(page, asgi_server, finance.email, PASSWORD)
    page.wait_for_url(f"{asgi_server}/")
    for screen in SCREENS:
        on_screen(page, screen)
        for path in (f"/billing/invoices/{invoice_a.pk}/", "/billing/overdue/"):
            page.goto(f"{asgi_server}{path}")
            assert_fits(page, path)
        page.goto(f"{asgi_server}/billing/overdue/")
        assert page.locator('[data-testid="overdue-row"]').count() == 1
        screenshot(page, f"billing-overdue-{screen['width']}")
    page.goto(f"{asgi_server}/billing/invoices/{invoice_a.pk}/")
    screenshot(page, "billing-invoice-payments-390")
