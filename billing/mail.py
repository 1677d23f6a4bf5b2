"""E-mails to a customer about money: a finalized invoice, a credit note (each with its PDF and
XML attached) and dunning reminders. Rendered in the customer's locale, amounts formatted
(`portal.formatting`), sent to the customer's billing address (else its active customer
admins: `billing.payments.reminder_recipients`) and to nobody else.

Each send runs from a Celery task the outbox published after the commit that caused it, and is
idempotent: the document is locked and its `emailed_at` checked and set in one transaction with
the send (a reminder by the `sent` mark in its audit trail), so a redelivered task sends once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from billing.models import CreditNote, Invoice, InvoiceReminder, InvoiceStatus
from billing.payments import reminder_recipients
from portal import formatting
from portal.links import portal_url
from portal.models import AuditEntry
from portal.services import audit_record

log = logging.getLogger(__name__)

PDF = "application/pdf"
XML = "application/xml"


def _link(name: str, pk: Any) -> str:
    return portal_url(name, pk)


def _context(invoice: Invoice) -> dict[str, Any]:
    def money(amount: Any) -> str:
        return formatting.money(amount, invoice.currency)

    return {
        "invoice": invoice,
        "customer": invoice.customer,
        "provider": invoice.seller or settings.BILLING_PROVIDER,
        "total": money(invoice.total),
        "amount_due": money(invoice.amount_due),
        "due_date": formatting.day(invoice.due_date),
        "period": invoice.period,
        "link": _link("invoice_detail", invoice.pk),
    }


def _message(subject: str, template: str, context: dict[str, Any], to: list[str]) -> EmailMessage:
    return EmailMessage(
        subject=subject,
        body=render_to_string(template, context),
        from_email=None,
        to=to,
        reply_to=[str(settings.BILLING_PROVIDER.get("email"))]
        if settings.BILLING_PROVIDER.get("email")
        else None,
    )


def invoice_message(invoice: Invoice) -> EmailMessage | None:
    """The e-mail of a finalized invoice, PDF and XML attached (None: nobody to send it to)."""
    from billing import einvoice
    from billing import pdf as billing_pdf

    to = reminder_recipients(invoice)
    if not to:
        return None
    with billing_pdf.for_buyer(invoice.customer):
        context = _context(invoice)
        provider = context["provider"].get("name", "")
        message = _message(
            f"Invoice {invoice.number} from {provider}", "billing/email/invoice.txt", context, to
        )
    _attach(
        message, str(invoice.number), billing_pdf.invoice_pdf(invoice), lambda: einvoice.invoice_xml(invoice)
    )
    return message


def _attach(message: EmailMessage, number: str, pdf: bytes, xml: Callable[[], bytes]) -> None:
    """The PDF, and the XML where the document can have one: a buyer without a country makes no
    valid e-invoice (billing.einvoice.IncompleteParty), nor does an XML the schema rejects
    (SchemaRejected); the PDF still goes, and the log says so."""
    from billing import einvoice

    message.attach(f"{number}.pdf", pdf, PDF)
    try:
        message.attach(f"{number}.xml", xml(), XML)
    except einvoice.NoEInvoice:
        log.warning("%s: e-mailed without its XML (incomplete billing identity or rejected XML)", number)


def credit_note_message(note: CreditNote) -> EmailMessage | None:
    from billing import einvoice
    from billing import pdf as billing_pdf

    invoice = note.invoice
    to = reminder_recipients(invoice)
    if not to:
        return None
    with billing_pdf.for_buyer(invoice.customer):
        context = {
            **_context(invoice),
            "note": note,
            "note_total": formatting.money(note.total, note.currency),
            "issued": formatting.day(note.created_at),
        }
        provider = context["provider"].get("name", "")
        message = _message(
            f"Credit note {note.number} for invoice {invoice.number} from {provider}",
            "billing/email/credit_note.txt",
            context,
            to,
        )
    _attach(message, note.number, billing_pdf.credit_note_pdf(note), lambda: einvoice.credit_note_xml(note))
    return message


@transaction.atomic
def invoice_send(*, invoice_id: str) -> bool:
    """Send a finalized invoice once (emailed_at set with the send). False: nothing sent."""
    invoice = (
        Invoice.objects.select_for_update(of=("self",))
        .select_related("customer", "contract")
        .filter(pk=invoice_id, status__in=[InvoiceStatus.FINALIZED, InvoiceStatus.PAID])
        .first()
    )
    if invoice is None or invoice.emailed_at is not None or not invoice.number:
        return False
    message = invoice_message(invoice)
    if message is None:
        return False
    message.send()
    invoice.emailed_at = timezone.now()
    invoice.save(update_fields=["emailed_at", "updated_at"])
    audit_record(
        actor=None, action="invoice.emailed", target=invoice, customer=invoice.customer,
        data={"to": message.to, "attachments": [a[0] for a in message.attachments]},
    )  # fmt: skip
    return True


@transaction.atomic
def credit_note_send(*, credit_note_id: str) -> bool:
    note = (
        CreditNote.objects.select_for_update(of=("self",))
        .select_related("invoice", "invoice__customer", "invoice__contract")
        .filter(pk=credit_note_id)
        .first()
    )
    if note is None or note.emailed_at is not None:
        return False
    message = credit_note_message(note)
    if message is None:
        return False
    message.send()
    note.emailed_at = timezone.now()
    note.save(update_fields=["emailed_at"])
    audit_record(
        actor=None, action="credit_note.emailed", target=note, customer=note.invoice.customer,
        data={"to": message.to, "attachments": [a[0] for a in message.attachments]},
    )  # fmt: skip
    return True


@transaction.atomic
def reminder_send(*, reminder_id: int) -> bool:
    """One dunning e-mail, unless the invoice was settled meanwhile or it went already."""
    reminder = (
        InvoiceReminder.objects.select_for_update(of=("self",))
        .select_related("invoice", "invoice__customer")
        .filter(pk=reminder_id)
        .first()
    )
    if reminder is None:
        return False
    invoice = reminder.invoice
    sent = AuditEntry.objects.filter(action="invoice.reminder_sent", target_id=str(invoice.pk),
                                     data__reminder=reminder.pk)  # fmt: skip
    if sent.exists() or invoice.status != InvoiceStatus.FINALIZED or invoice.amount_due <= 0:
        return False
    to = reminder_recipients(invoice)
    if not to:
        return False
    from billing.pdf import for_buyer

    with for_buyer(invoice.customer):
        context = {**_context(invoice), "days": reminder.days_overdue}
        provider = context["provider"].get("name", "")
        message = _message(
            f"Reminder: invoice {invoice.number} is {reminder.days_overdue} days overdue ({provider})",
            "billing/email/reminder.txt",
            context,
            to,
        )
    message.send()
    audit_record(
        actor=None, action="invoice.reminder_sent", target=invoice, customer=invoice.customer,
        data={"reminder": reminder.pk, "days_overdue": reminder.days_overdue, "to": to},
    )  # fmt: skip
    return True
