"""One invoice: its lines, payments, credit notes and what finance does to it."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing import payments, selectors, services
from billing.models import Invoice, InvoiceStatus, PaymentMethod
from billing.views.common import _user
from portal import formatting
from portal.roles import Capability, can
from portal.validation import error_text
from portal.views import require_capability


class PaymentForm(forms.Form):
    """Finance's payment form; the rules (amount ≤ due, no future date) are billing.payments'."""

    received_on = forms.DateField(label="Received on", widget=forms.DateInput(attrs={"type": "date"}))
    amount = forms.CharField(label="Amount", widget=forms.TextInput(attrs={"inputmode": "decimal"}))
    method = forms.ChoiceField(choices=PaymentMethod.choices, initial=PaymentMethod.BANK_TRANSFER)
    reference = forms.CharField(max_length=140, required=False, help_text="Bank reference, card receipt…")

    @classmethod
    def for_invoice(cls, invoice: Invoice) -> PaymentForm:
        # Today in the user's zone (the middleware activated it); the whole amount due.
        return cls(initial={"received_on": timezone.localdate(), "amount": invoice.amount_due})


@login_required
def invoice_detail(request: HttpRequest, pk: str) -> HttpResponse:
    require_capability(request, Capability.VIEW_INVOICES)
    user = _user(request)
    invoice = get_object_or_404(selectors.invoices_visible_to(user), pk=pk)
    lines = list(invoice.lines.order_by("position"))
    credited = sum((n.total for n in invoice.credit_notes.all()), Decimal("0"))
    takes_payments = invoice.status == InvoiceStatus.FINALIZED and invoice.amount_due > 0
    context: dict[str, Any] = {
        "invoice": invoice,
        "lines": lines,
        "credit_notes": invoice.credit_notes.order_by("created_at"),
        "credited": credited,
        "payments": invoice.payments.select_related("created_by").order_by("received_on", "created_at"),
        "reminders": invoice.reminders.order_by("days_overdue"),
        "days_overdue": payments.days_overdue(invoice) if invoice.overdue_since else 0,
        "can_run": can(user, Capability.RUN_INVOICES),
        "can_record": can(user, Capability.RECORD_PAYMENTS) and takes_payments,
        "payment_form": PaymentForm.for_invoice(invoice),
        "can_dispute": can(user, Capability.DISPUTE_INVOICES) and invoice.status in ("finalized", "paid"),
        # Dispute tickets (support links them to the invoice; shown to who may see the invoice).
        "disputes": invoice.tickets.order_by("created_at") if hasattr(invoice, "tickets") else [],
        "tax_percent": format((invoice.tax_rate * 100).normalize(), "f"),
        "line_spec": {"invoice": str(invoice.pk)},
    }
    return render(request, "billing/invoice_detail.html", context)


INVOICE_ACTIONS = ("finalize", "void", "payment", "credit-note")


def _amount(text: str) -> Decimal:
    try:
        amount = Decimal(text.strip().replace(",", "."))
    except InvalidOperation:
        raise ValidationError({"amount": "Give the amount as a number, e.g. 25.00."}) from None
    if not amount.is_finite():
        raise ValidationError({"amount": "Give the amount as a number, e.g. 25.00."})
    return amount


@login_required
@require_POST
def invoice_action(request: HttpRequest, pk: str, action: str) -> HttpResponseBase:
    user = _user(request)
    if not (can(user, Capability.RUN_INVOICES) or can(user, Capability.RECORD_PAYMENTS)):
        raise PermissionDenied
    invoice = get_object_or_404(selectors.invoices_visible_to(user), pk=pk)
    if action not in INVOICE_ACTIONS:
        return redirect("invoice_detail", pk=invoice.pk)
    needed = Capability.RECORD_PAYMENTS if action == "payment" else Capability.RUN_INVOICES
    if not can(user, needed):
        raise PermissionDenied
    try:
        if action == "finalize":
            invoice = services.invoice_finalize(actor=user, invoice=invoice)
            messages.success(request, f"Finalized as {invoice.number}; it is e-mailed to the customer.")
        elif action == "void":
            services.invoice_void(actor=user, invoice=invoice, reason=request.POST.get("reason", ""))
            messages.success(request, "Invoice voided. The next run for its period makes a new draft.")
        elif action == "payment":
            form = PaymentForm(request.POST)
            if not form.is_valid():
                raise ValidationError(dict(form.errors.items()))
            payment = payments.payment_record(
                actor=user,
                invoice=invoice,
                amount=form.cleaned_data["amount"],
                received_on=form.cleaned_data["received_on"],
                method=form.cleaned_data["method"],
                reference=form.cleaned_data["reference"],
            )
            invoice.refresh_from_db()
            left = formatting.money(invoice.amount_due, invoice.currency)
            paid = formatting.money(payment.amount, payment.currency)
            done = "The invoice is paid." if invoice.status == InvoiceStatus.PAID else f"{left} still due."
            messages.success(request, f"Payment of {paid} recorded. {done}")
        else:
            amount = _amount(request.POST.get("amount", ""))
            note = services.credit_note_create(
                actor=user, invoice=invoice, amount=amount, reason=request.POST.get("reason", "")
            )
            total = formatting.money(note.total, note.currency)
            messages.success(request, f"Credit note {note.number} issued: {total}.")
    except ValidationError as exc:
        messages.error(request, error_text(exc))
    return redirect("invoice_detail", pk=invoice.pk)
