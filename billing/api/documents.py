"""The documents of an invoice and of a credit note: PDF (Factur-X) and CII XML (EN 16931).

Actions mixed into `InvoiceViewSet` and `CreditNoteViewSet` (billing/api/views.py), so they
reach rows only through those viewsets' scoped querysets: another customer's id is a 404, a
viewer's role a 403 (docs/api.md, "Invoices").

    GET /api/v1/invoices/{id}/pdf/        application/pdf (Factur-X once finalized; a draft: marked DRAFT)
    GET /api/v1/invoices/{id}/xml/        application/xml; a draft answers 409
    GET /api/v1/credit-notes/{id}/pdf/    application/pdf (Factur-X)
    GET /api/v1/credit-notes/{id}/xml/    application/xml
"""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.exceptions import APIException
from rest_framework.request import Request

from billing import einvoice
from billing import pdf as billing_pdf
from billing.models import CreditNote, Invoice
from portal.api.serializers import ErrorSerializer

PDF = {(200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The PDF")}
_CONFLICT = OpenApiResponse(
    ErrorSerializer,
    description="A draft invoice, or a billing identity that lacks what EN 16931 requires",
)
XML = {
    (200, "application/xml"): OpenApiResponse(
        OpenApiTypes.BINARY, description="UN/CEFACT CII XML, EN 16931 (urn:cen.eu:en16931:2017)"
    ),
    (409, "application/json"): _CONFLICT,
}


class NoEInvoice(APIException):
    """409: the document exists but has no e-invoice (yet): a draft, or an incomplete party."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "This document has no e-invoice."
    default_code = "no_einvoice"


def _file(content: bytes, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _xml(build: Any, document: Any) -> bytes:
    try:
        return bytes(build(document))
    except (einvoice.DocumentNotIssued, einvoice.NoEInvoice) as exc:
        raise NoEInvoice(str(exc)) from None


class InvoiceDocumentActions:
    """`pdf` and `xml` of an invoice (mixed into InvoiceViewSet, which scopes `get_object`)."""

    get_object: Any

    @extend_schema(responses=PDF, summary="The PDF: Factur-X (PDF/A-3 with its XML) once finalized")
    @action(detail=True, methods=["get"])
    def pdf(self, request: Request, pk: str | None = None) -> HttpResponse:
        invoice: Invoice = self.get_object()
        name = invoice.number or f"draft-{invoice.pk}"
        return _file(billing_pdf.invoice_pdf(invoice), "application/pdf", f"{name}.pdf")

    @extend_schema(responses=XML, summary="The e-invoice: CII XML (EN 16931); 409 for a draft")
    @action(detail=True, methods=["get"])
    def xml(self, request: Request, pk: str | None = None) -> HttpResponse:
        invoice: Invoice = self.get_object()
        content = _xml(einvoice.invoice_xml, invoice)
        return _file(content, "application/xml", f"{invoice.number}.xml")


class CreditNoteDocumentActions:
    """`pdf` and `xml` of a credit note (mixed into CreditNoteViewSet)."""

    get_object: Any

    @extend_schema(responses=PDF, summary="The credit note's PDF: Factur-X (PDF/A-3 with its XML)")
    @action(detail=True, methods=["get"])
    def pdf(self, request: Request, pk: str | None = None) -> HttpResponse:
        note: CreditNote = self.get_object()
        return _file(billing_pdf.credit_note_pdf(note), "application/pdf", f"{note.number}.pdf")

    @extend_schema(responses=XML, summary="The credit note as CII XML (EN 16931, type 381)")
    @action(detail=True, methods=["get"])
    def xml(self, request: Request, pk: str | None = None) -> HttpResponse:
        note: CreditNote = self.get_object()
        return _file(_xml(einvoice.credit_note_xml, note), "application/xml", f"{note.number}.xml")
