"""What finance sends: CSV exports. The PDFs and e-invoices are billing.einvoice's (`invoice_pdf`
is re-exported here for older callers)."""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

from billing.models import CreditNote, Invoice, InvoiceLine, Payment
from billing.money import round_money
from billing.pdf import invoice_pdf as invoice_pdf  # moved there; importable from here too
from fleet.models import HourlyUsage
from portal import formatting
from portal.csvfile import csv_rows as csv_rows  # importable from here too

# The invoice export (docs/billing.md, "CSV export"): one row per invoice line, credit note and
# payment, the `record` column saying which. Amounts are written at the currency's minor unit
# with a dot decimal and no grouping, whatever the reader's locale: this file is for machines.
# Dates are ISO 8601 calendar dates; an issue date is the one the document prints (the date in
# the customer's zone, as billing.pdf and billing.einvoice take it), not the UTC one.
INVOICE_EXPORT_HEADER = [
    "record", "document", "invoice", "status", "customer", "contract", "period", "currency", "date",
    "line", "kind", "description", "metric", "line_period", "quantity", "unit_price", "amount", "tax",
    "total", "invoice_subtotal", "invoice_tax", "invoice_total", "amount_due", "method", "reference",
]  # fmt: skip


def _money(amount: Decimal | None, currency: str) -> str:
    return "" if amount is None else f"{round_money(amount, currency):f}"


def _plain(value: Decimal | None) -> str:
    return "" if value is None else f"{value:f}"


def _issued_on(moment: datetime | None, time_zone: str) -> str:
    return "" if moment is None else moment.astimezone(formatting.zone(time_zone)).date().isoformat()


def invoice_export_rows(invoices: Iterable[Invoice]) -> Iterator[list[Any]]:
    """The rows of the invoice export for `invoices` (already scoped to the reader), each with
    its lines, credit notes and payments prefetched (or fetched here)."""
    for invoice in invoices:
        cur = invoice.currency
        name = invoice.display_name  # a draft: "Draft · <customer> · <period>", never its id
        head = [invoice.status, invoice.customer.name, invoice.contract.number, invoice.period, cur]
        totals = [_money(invoice.subtotal, cur), _money(invoice.tax, cur), _money(invoice.total, cur),
                  _money(invoice.amount_due, cur)]  # fmt: skip
        zone = invoice.customer.time_zone
        issued = _issued_on(invoice.finalized_at, zone)
        lines: Iterable[InvoiceLine] = invoice.lines.all()
        for line in lines:
            yield [
                "invoice_line", name, name, *head, issued, line.position, line.kind, line.description,
                line.metric, line.period, _plain(line.quantity), _plain(line.unit_price),
                _money(line.amount, cur), "", "", *totals, "", "",
            ]  # fmt: skip
        notes: Iterable[CreditNote] = invoice.credit_notes.all()
        for note in sorted(notes, key=lambda n: n.created_at):
            yield [
                "credit_note", note.number, name, *head, _issued_on(note.created_at, zone), "",
                "credit_note", note.reason, "", "", "", "", _money(note.amount, cur), _money(note.tax, cur),
                _money(note.total, cur), *totals, "", "",
            ]  # fmt: skip
        paid: Iterable[Payment] = invoice.payments.all()
        for payment in sorted(paid, key=lambda p: (p.received_on, p.created_at)):
            yield [
                "payment", str(payment.pk), name, *head, payment.received_on.isoformat(), "", "payment",
                payment.note, "", "", "", "", _money(payment.amount, cur), "", _money(payment.amount, cur),
                *totals, payment.method, payment.reference,
            ]  # fmt: skip


def usage_rows(rows: Iterable[HourlyUsage]) -> Iterator[list[Any]]:
    for row in rows:
        yield [row.hour.isoformat(), row.asset.serial_number, row.metric, row.quantity]


def as_text(chunks: Iterable[str]) -> str:
    buffer = io.StringIO()
    for chunk in chunks:
        buffer.write(chunk)
    return buffer.getvalue()
