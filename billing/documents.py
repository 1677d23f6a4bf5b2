"""What finance sends: invoice PDFs (WeasyPrint, from an HTML template) and CSV exports."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.template.loader import render_to_string

from billing.models import Invoice, InvoiceLine
from fleet.models import HourlyUsage


def invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice as a PDF. Fonts come from the system (fonts-dejavu); nothing is fetched."""
    from weasyprint import HTML  # imported here: Pango loads only when a PDF is made

    html = render_to_string(
        "billing/invoice_pdf.html",
        {
            "invoice": invoice,
            "lines": invoice.lines.order_by("position"),
            "customer": invoice.customer,
            "provider": settings.BILLING_PROVIDER,
            "credit_notes": invoice.credit_notes.all(),
            "tax_percent": format((invoice.tax_rate * 100).normalize(), "f"),
        },
    )

    def no_fetch(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        raise ValueError(f"invoice PDFs fetch nothing ({url})")

    return bytes(HTML(string=html, url_fetcher=no_fetch).write_pdf())


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_rows(header: list[str], rows: Iterable[list[Any]]) -> Iterator[str]:
    """CSV text, one line at a time (for a streaming response). Cells that a spreadsheet would
    run as formulas are prefixed with a quote."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([_safe(cell) for cell in row])


def _safe(cell: Any) -> Any:
    if isinstance(cell, str) and cell[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(cell):
        return "'" + cell
    return "" if cell is None else cell


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


INVOICE_EXPORT_HEADER = [
    "invoice", "status", "customer", "contract", "period", "currency", "line", "kind", "description",
    "metric", "line_period", "quantity", "unit_price", "amount", "subtotal", "tax", "total",
]  # fmt: skip


def invoice_export_rows(invoices: Iterable[Invoice]) -> Iterator[list[Any]]:
    """One row per invoice line, with the invoice's totals repeated (what an accounting import wants)."""
    for invoice in invoices:
        lines: Iterable[InvoiceLine] = invoice.lines.all()
        for line in lines:
            yield [
                invoice.number or f"draft-{invoice.pk}", invoice.status, invoice.customer.name,
                invoice.contract.number, invoice.period, invoice.currency, line.position, line.kind,
                line.description, line.metric, line.period, line.quantity, line.unit_price, line.amount,
                invoice.subtotal, invoice.tax, invoice.total,
            ]  # fmt: skip


def usage_rows(rows: Iterable[HourlyUsage]) -> Iterator[list[Any]]:
    for row in rows:
        yield [row.hour.isoformat(), row.asset.serial_number, row.metric, row.quantity]


def as_text(chunks: Iterable[str]) -> str:
    buffer = io.StringIO()
    for chunk in chunks:
        buffer.write(chunk)
    return buffer.getvalue()
