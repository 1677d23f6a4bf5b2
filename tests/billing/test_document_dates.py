"""Dates on billing documents, written as the buyer reads them (docs/billing.md, "Dates on
documents"): the PDFs and e-mails in the customer's billing locale; an issue date is the date in
the customer's zone (the one its e-invoice gives), a due date and a period are dates as they are;
an availability statement's moments are in the customer's zone. The CSV export stays ISO 8601.

Customer A (Alpha) reads German in Berlin, customer B (Bravo) US English in New York. The invoice
is finalized at 23:30 UTC on 6 December: already 7 December in Berlin, still the 6th in New York.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import NamedTuple

import pytest
import time_machine
from pypdf import PdfReader

from billing import availability, einvoice, mail, metering, payments, services
from billing.documents import INVOICE_EXPORT_HEADER, as_text, csv_rows, invoice_export_rows
from billing.invoicing import bill_period
from billing.models import Contract, CreditNote, Invoice, Plan
from billing.pdf import credit_note_pdf, invoice_pdf
from billing.views.availability import render_statement_pdf
from portal.models import Customer
from tests.billing_fixtures import contract_for, status_change, usage
from tests.fleet_fixtures import Installed

FINALIZED = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
CREDITED = datetime(2026, 12, 10, 4, 0, tzinfo=UTC)  # 05:00 in Berlin, 23:00 on the 9th in New York

# Literal, as each reader writes them (Babel's medium date, CLDR skeleton yMMMd).
EXPECTED = {
    "alpha": {
        "issued": "7. Dez. 2026",
        "due": "5. Jan. 2027",
        "period": "1. Nov. 2026 – 30. Nov. 2026",
        "credited": "10. Dez. 2026",
        "xml_issued": "20261207",
    },
    "bravo": {
        "issued": "Dec 6, 2026",
        "due": "Jan 5, 2027",
        "period": "Nov 1, 2026 – Nov 30, 2026",
        "credited": "Dec 9, 2026",
        "xml_issued": "20261206",
    },
}


@pytest.fixture
def readers(customer_a: Customer, customer_b: Customer) -> None:
    Customer.objects.filter(pk=customer_a.pk).update(locale="de-DE", time_zone="Europe/Berlin", country="DE")
    Customer.objects.filter(pk=customer_b.pk).update(
        locale="en-US", time_zone="America/New_York", country="US"
    )


@pytest.fixture
def issued(
    readers: None, contract_a: Contract, contract_b: Contract, fleet_a: Installed, fleet_b: Installed
) -> dict[str, Invoice]:
    usage(fleet_a.asset, datetime(2026, 11, 3, 10, tzinfo=UTC), "10")
    usage(fleet_b.asset, datetime(2026, 11, 3, 10, tzinfo=UTC), "20")
    bill_period("2026-11", now=datetime(2026, 12, 2, tzinfo=UTC))
    invoices = {}
    with time_machine.travel(FINALIZED, tick=False):
        for invoice in Invoice.objects.select_related("customer"):
            invoices[invoice.customer.slug] = services.invoice_finalize(actor=None, invoice=invoice)
    return {
        slug: Invoice.objects.select_related("customer", "contract").get(pk=i.pk)
        for slug, i in invoices.items()
    }


def _credit(invoice: Invoice) -> CreditNote:
    with time_machine.travel(CREDITED, tick=False):
        return services.credit_note_create(
            actor=None, invoice=invoice, amount=Decimal("1.00"), reason="Goodwill"
        )


def pdf_text(content: bytes) -> str:
    """The PDF's text with every run of white space (line breaks in table cells too) one space."""
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    return " ".join(text.replace("\u00a0", " ").split())


@pytest.mark.parametrize("slug", ["alpha", "bravo"])
def test_the_invoice_pdf_writes_its_dates_as_its_buyer_does(issued: dict[str, Invoice], slug: str) -> None:
    invoice, expected = issued[slug], EXPECTED[slug]

    text = pdf_text(invoice_pdf(invoice))

    assert f"Issued {expected['issued']}" in text
    assert f"Due {expected['due']}" in text
    assert f"Period {expected['period']}" in text
    assert f"by {expected['due']} by SEPA" in text
    assert "2026-12-0" not in text
    assert "2027-01-05" not in text
    # The issue date is the e-invoice's: the same calendar day, in the same zone.
    assert f">{expected['xml_issued']}<".encode() in einvoice.invoice_xml(invoice)


@pytest.mark.parametrize(("slug", "stamp"), [("alpha", "PAID 8. Dez. 2026"), ("bravo", "PAID Dec 7, 2026")])
def test_the_paid_stamp_is_the_day_it_was_paid_in_the_customers_zone(
    issued: dict[str, Invoice], slug: str, stamp: str
) -> None:
    invoice = issued[slug]
    with time_machine.travel(datetime(2026, 12, 8, 3, 0, tzinfo=UTC), tick=False):  # 04:00 / 22:00 the 7th
        payments.payment_record(
            actor=None, invoice=invoice, amount=invoice.amount_due, received_on=date(2026, 12, 7),
            method="bank_transfer",
        )  # fmt: skip

    assert stamp in pdf_text(invoice_pdf(Invoice.objects.get(pk=invoice.pk)))


class Credited(NamedTuple):
    slug: str
    invoice: Invoice
    expected: dict[str, str]
    note: CreditNote


@pytest.fixture(params=["alpha", "bravo"])
def credited(request: pytest.FixtureRequest, issued: dict[str, Invoice]) -> Credited:
    """Each customer's invoice, what its documents print, and a credit note on it."""
    slug: str = request.param
    return Credited(slug, issued[slug], EXPECTED[slug], _credit(issued[slug]))


def test_the_credit_note_pdf_writes_its_and_its_invoices_dates_as_its_buyer_does(credited: Credited) -> None:
    _, invoice, expected, note = credited

    text = pdf_text(credit_note_pdf(note))
    listed = pdf_text(invoice_pdf(Invoice.objects.get(pk=invoice.pk)))

    assert f"Issued {expected['credited']}" in text
    assert f"Invoice date {expected['issued']}" in text
    assert f"for invoice {invoice.number} of {expected['issued']}" in text
    assert f"{note.number} {expected['credited']} Goodwill" in listed  # the invoice's credit-note table


def test_the_invoice_and_credit_note_e_mails_write_dates_as_the_attached_documents(
    credited: Credited,
) -> None:
    slug, invoice, expected, note = credited

    invoice_mail = mail.invoice_message(invoice)
    note_mail = mail.credit_note_message(note)

    assert invoice_mail is not None
    assert note_mail is not None
    assert f"Due by: {expected['due']}\n" in invoice_mail.body
    assert f"issued {expected['credited']}, correcting" in note_mail.body
    other = EXPECTED["bravo" if slug == "alpha" else "alpha"]
    assert other["due"] not in invoice_mail.body  # per customer: never the other's way of writing


def test_the_csv_export_keeps_iso_dates_of_the_days_the_documents_print(issued: dict[str, Invoice]) -> None:
    notes = [_credit(issued["alpha"]), _credit(issued["bravo"])]

    text = as_text(
        csv_rows(INVOICE_EXPORT_HEADER, invoice_export_rows(Invoice.objects.order_by("customer__name")))
    )

    dates = {(row["document"], row["record"]): row["date"] for row in csv.DictReader(io.StringIO(text))}
    assert dates[(str(issued["alpha"].number), "invoice_line")] == "2026-12-07"
    assert dates[(str(issued["bravo"].number), "invoice_line")] == "2026-12-06"
    assert dates[(notes[0].number, "credit_note")] == "2026-12-10"
    assert dates[(notes[1].number, "credit_note")] == "2026-12-09"


@pytest.mark.parametrize(
    ("slug", "fault"),
    [
        ("alpha", "5. Okt. 2026, 12:00 5. Okt. 2026, 18:00"),
        ("bravo", "Oct 5, 2026, 06:00 Oct 5, 2026, 12:00"),
    ],
)
def test_the_availability_statement_pdf_writes_moments_in_the_customers_zone_and_locale(
    readers: None, plan: Plan, fleet_a: Installed, fleet_b: Installed, slug: str, fault: str
) -> None:
    fleet = fleet_a if slug == "alpha" else fleet_b
    customer = Customer.objects.get(slug=slug)
    contract = contract_for(customer, plan, fleet.asset, date(2026, 1, 1))
    status_change(fleet.asset, "online", datetime(2026, 9, 1, tzinfo=UTC), previous="never_seen")
    status_change(fleet.asset, "fault", datetime(2026, 10, 5, 10, tzinfo=UTC))
    status_change(fleet.asset, "online", datetime(2026, 10, 5, 16, tzinfo=UTC), previous="fault")
    period = metering.period_of("2026-10", customer.time_zone)

    statement = availability.statement(contract, period, now=datetime(2026, 11, 5, tzinfo=UTC))
    text = pdf_text(render_statement_pdf(statement))

    assert f"fault {fault}" in text
    assert f"times in {customer.time_zone}" in text
