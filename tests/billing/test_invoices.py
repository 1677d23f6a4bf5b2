"""Invoice states: finalize with gap-free numbers, immutability, void, paid, credit notes."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import close_old_connections
from django.utils import timezone

from billing import services
from billing.invoicing import bill_period
from billing.models import Contract, Invoice, InvoiceLine, InvoiceLockedError, InvoiceStatus, Plan
from billing.payments import payment_record
from fleet.models import AssetModel
from portal.models import Customer
from tests.billing_fixtures import contract_for, usage
from tests.fleet_fixtures import Installed, install

AFTER_OCTOBER = datetime(2026, 11, 5, tzinfo=UTC)


@pytest.fixture
def draft(contract_a: Contract, fleet_a: Installed) -> Invoice:
    usage(fleet_a.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "10")
    bill_period("2026-10", now=AFTER_OCTOBER)
    return Invoice.objects.get(contract=contract_a)


def test_finalizing_gives_the_next_number_of_the_year_and_a_due_date(
    draft: Invoice, contract_b: Contract
) -> None:
    bill_period("2026-10", now=AFTER_OCTOBER)
    first = services.invoice_finalize(actor=None, invoice=draft)
    second = services.invoice_finalize(actor=None, invoice=Invoice.objects.get(contract=contract_b))
    year = timezone.now().year
    assert (first.number, second.number) == (f"INV-{year}-000001", f"INV-{year}-000002")
    assert first.due_date is not None
    assert (first.due_date - timezone.now().date()).days == 30
    with pytest.raises(InvoiceLockedError):
        services.invoice_finalize(actor=None, invoice=first)


@pytest.mark.django_db(transaction=True)
def test_concurrent_finalizing_leaves_no_gap_and_no_duplicate(
    customer_a: Customer, plan: Plan, compressor: AssetModel
) -> None:
    for n in range(8):
        installed = install(customer_a, compressor, f"GAP-{n}")
        contract_for(customer_a, plan, installed.asset, date(2026, 1, 1))
    bill_period("2026-10", now=AFTER_OCTOBER)
    invoices = list(Invoice.objects.all())
    barrier = threading.Barrier(len(invoices))

    def finalize(invoice: Invoice) -> None:
        try:
            barrier.wait()
            services.invoice_finalize(actor=None, invoice=invoice)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=finalize, args=(invoice,)) for invoice in invoices]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    numbers = sorted(int(n.rsplit("-", 1)[1]) for n in Invoice.objects.values_list("number", flat=True) if n)
    assert numbers == list(range(1, len(invoices) + 1))


def test_a_finalized_invoice_refuses_every_change(draft: Invoice) -> None:
    invoice = services.invoice_finalize(actor=None, invoice=draft)
    line = invoice.lines.first()
    assert line is not None

    invoice.total = Decimal("1.00")
    with pytest.raises(InvoiceLockedError):
        invoice.save()
    with pytest.raises(InvoiceLockedError):
        Invoice.objects.filter(pk=invoice.pk).update(total=Decimal("0"))
    with pytest.raises(InvoiceLockedError):
        Invoice.objects.get(pk=invoice.pk).delete()
    line.amount = Decimal("0")
    with pytest.raises(InvoiceLockedError):
        line.save()
    with pytest.raises(InvoiceLockedError):
        line.delete()
    with pytest.raises(InvoiceLockedError):
        InvoiceLine.objects.filter(invoice=invoice).update(amount=Decimal("0"))
    with pytest.raises(InvoiceLockedError):
        InvoiceLine.objects.create(
            invoice=invoice, position=99, kind="usage", description="x", period="2026-10", amount=1
        )

    stored = Invoice.objects.get(pk=invoice.pk)
    assert stored.total == draft.total
    assert stored.lines.count() == 3


def test_paid_and_void_are_the_only_ways_on(draft: Invoice) -> None:
    today = timezone.now().date()
    with pytest.raises(ValidationError):
        payment_record(actor=None, invoice=draft, amount=draft.total, received_on=today, method="cash")
    invoice = services.invoice_finalize(actor=None, invoice=draft)
    payment_record(actor=None, invoice=invoice, amount=invoice.total, received_on=today, method="cash")
    paid = Invoice.objects.get(pk=invoice.pk)
    assert paid.status == InvoiceStatus.PAID
    assert paid.paid_at is not None
    with pytest.raises(InvoiceLockedError):
        services.invoice_void(actor=None, invoice=paid, reason="too late")


def test_void_needs_a_reason(draft: Invoice) -> None:
    invoice = services.invoice_finalize(actor=None, invoice=draft)
    with pytest.raises(ValidationError):
        services.invoice_void(actor=None, invoice=invoice, reason="  ")
    voided = services.invoice_void(actor=None, invoice=invoice, reason="Billed the wrong plan")
    assert (voided.status, voided.number) == (InvoiceStatus.VOID, invoice.number)


def test_credit_notes_correct_finalized_invoices_up_to_their_subtotal(draft: Invoice) -> None:
    with pytest.raises(ValidationError):
        services.credit_note_create(actor=None, invoice=draft, amount=Decimal("1"), reason="draft")
    invoice = services.invoice_finalize(actor=None, invoice=draft)  # subtotal 105.00, tax 19 %

    note = services.credit_note_create(actor=None, invoice=invoice, amount=Decimal("10.005"), reason="Outage")
    assert (note.amount, note.tax, note.total) == (Decimal("10.01"), Decimal("1.90"), Decimal("11.91"))
    assert note.number == f"CN-{timezone.now().year}-000001"
    with pytest.raises(ValidationError, match=r"94\.99"):
        services.credit_note_create(actor=None, invoice=invoice, amount=Decimal("95"), reason="Too much")
    with pytest.raises(ValidationError):
        services.credit_note_create(actor=None, invoice=invoice, amount=Decimal("0"), reason="Nothing")
    services.credit_note_create(actor=None, invoice=invoice, amount=Decimal("94.99"), reason="The rest")
    invoice.refresh_from_db()
    assert invoice.total == draft.total  # the invoice itself never changes


def test_the_admin_cannot_change_or_delete_a_finalized_invoice(draft: Invoice, operator: object) -> None:
    from tests.conftest import client_for

    invoice = services.invoice_finalize(actor=None, invoice=draft)
    client = client_for(operator)
    page = client.get(f"/admin/billing/invoice/{invoice.pk}/change/")
    assert page.status_code == 200  # operators may look
    assert b'name="_save"' not in page.content
    assert client.post(f"/admin/billing/invoice/{invoice.pk}/change/", {"total": "0"}).status_code == 403
    assert client.post(f"/admin/billing/invoice/{invoice.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Invoice.objects.get(pk=invoice.pk).total == draft.total


def test_an_issued_invoice_never_goes_back_to_draft(draft: Invoice) -> None:
    invoice = services.invoice_finalize(actor=None, invoice=draft)
    invoice.status = InvoiceStatus.DRAFT
    with pytest.raises(InvoiceLockedError):
        invoice.save()
    with pytest.raises(InvoiceLockedError):
        Invoice.objects.filter(pk=invoice.pk).update(status=InvoiceStatus.DRAFT)
    with pytest.raises(InvoiceLockedError):
        InvoiceLine.objects.bulk_create(
            [
                InvoiceLine(
                    invoice=invoice, position=9, kind="usage", description="x", period="2026-10", amount=1
                )
            ]
        )
    assert Invoice.objects.get(pk=invoice.pk).status == InvoiceStatus.FINALIZED


def test_an_invoice_with_credit_notes_cannot_be_voided(draft: Invoice) -> None:
    invoice = services.invoice_finalize(actor=None, invoice=draft)
    services.credit_note_create(actor=None, invoice=invoice, amount=Decimal("1"), reason="Goodwill")
    with pytest.raises(ValidationError, match="credit notes"):
        services.invoice_void(actor=None, invoice=invoice, reason="Oops")
