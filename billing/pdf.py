"""The PDFs finance sends: HTML templates rendered by WeasyPrint, made Factur-X by factur-x.

Rendering fetches nothing (no stylesheet, image or font from a URL: `NoFetch`) and uses the
system fonts (fonts-dejavu). Figures and dates are written as the buyer reads them: the
customer's locale, and its time zone for the date a moment falls on (docs/billing.md, "Dates on
documents"). The calendar dates (due date, period) are dates and print as they are.
An issued document is PDF/A-3b, the archival form Factur-X asks for, with its CII XML
embedded as `factur-x.xml` (billing.einvoice).
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from typing import Any
from zoneinfo import ZoneInfo

from django.template.loader import render_to_string

from billing import metering
from billing.einvoice import NoEInvoice, credit_note_xml, invoice_parties, invoice_xml, vat_category
from billing.models import CreditNote, Invoice
from portal import formatting
from portal.models import Customer

logger = logging.getLogger(__name__)

PDF_A = "pdf/a-3b"


def _no_fetch_class() -> Any:
    from weasyprint.urls import URLFetcher  # imported here: Pango loads only when a PDF is made

    class NoFetch(URLFetcher):
        """Refuse every URL: a document never depends on anything but its template."""

        def fetch(self, url: str, headers: Any = None) -> Any:
            raise ValueError(f"billing PDFs fetch nothing ({url[:80]})")

    return NoFetch


def html_to_pdf(html: str, *, archival: bool) -> bytes:
    """WeasyPrint's PDF of `html`: PDF/A-3b when `archival`, else a plain PDF."""
    from weasyprint import HTML

    options: dict[str, Any] = {"pdf_variant": PDF_A} if archival else {}
    return bytes(HTML(string=html, url_fetcher=_no_fetch_class()()).write_pdf(**options))


def attach_facturx(pdf: bytes, xml: bytes, *, lang: str = "") -> bytes:
    """`pdf` (PDF/A-3) with `xml` embedded as the Factur-X EN 16931 data (checked by the XSD)."""
    import facturx

    return bytes(
        facturx.generate_from_binary(
            pdf, xml, flavor="factur-x", level="en16931", check_xsd=True, lang=lang or None
        )
    )


def _parties(invoice: Invoice) -> tuple[dict[str, Any], dict[str, Any]]:
    """The parties with their country's name (the seller's snapshot keeps only the code)."""
    from django_countries import countries

    def named(party: dict[str, Any]) -> dict[str, Any]:
        code = str(party.get("country") or "")
        return {**party, "country_name": party.get("country_name") or countries.name(code) or code}

    seller, bill_to = invoice_parties(invoice)
    return named(seller), named(bill_to)


def for_buyer(customer: Customer) -> AbstractContextManager[ZoneInfo]:
    """Format as the buyer of a billing document reads it: its billing locale and its zone, so
    an issue date is the date the e-invoice gives (billing.einvoice takes it in that zone)."""
    return formatting.reader(locale=customer.locale, time_zone=customer.time_zone)


def render_invoice(invoice: Invoice, *, archival: bool) -> bytes:
    """The invoice page as a PDF, figures and dates as the customer reads them."""
    seller, bill_to = _parties(invoice)
    customer = invoice.customer
    with for_buyer(customer):
        html = render_to_string(
            "billing/invoice_pdf.html",
            {
                "invoice": invoice,
                "period": metering.period_of(invoice.period, customer.time_zone),
                "lines": invoice.lines.order_by("position"),
                "customer": customer,
                "seller": seller,
                "bill_to": bill_to,
                "vat": vat_category(bill_to, invoice.tax_rate),
                "credit_notes": invoice.credit_notes.order_by("created_at"),
            },
        )
    return html_to_pdf(html, archival=archival)


def render_credit_note(note: CreditNote) -> bytes:
    """The credit note as a PDF/A-3b, figures and dates as the customer reads them."""
    invoice = note.invoice
    seller, bill_to = _parties(invoice)
    with for_buyer(invoice.customer):
        html = render_to_string(
            "billing/credit_note_pdf.html",
            {
                "note": note,
                "invoice": invoice,
                "seller": seller,
                "bill_to": bill_to,
                "vat": vat_category(bill_to, invoice.tax_rate),
            },
        )
    return html_to_pdf(html, archival=True)


# The documents finance sends: Factur-X once issued -----------------------------------------


def invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice as a PDF: Factur-X (PDF/A-3 with its CII XML) once issued; a draft is a plain
    PDF marked DRAFT. An issued invoice whose parties lack what EN 16931 needs (an invoice
    finalized before the billing identity was filled in) is still its PDF/A, without the XML."""
    rendered = render_invoice(invoice, archival=not invoice.is_draft)
    if not invoice.number:  # a draft, or a draft voided before it was ever issued: no e-invoice
        return rendered
    return _with_xml(rendered, invoice_xml, invoice, lang=invoice.customer.locale)


def credit_note_pdf(note: CreditNote) -> bytes:
    """The credit note as a Factur-X PDF/A-3 with its CII XML embedded."""
    return _with_xml(render_credit_note(note), credit_note_xml, note, lang=note.invoice.customer.locale)


def _with_xml(rendered: bytes, build: Any, document: Invoice | CreditNote, *, lang: str) -> bytes:
    try:
        xml = build(document)
    except NoEInvoice as exc:
        logger.warning("%s %s: PDF without e-invoice: %s", type(document).__name__, document, exc)
        return rendered
    return attach_facturx(rendered, xml, lang=lang)
