"""One invoice: its lines, credit notes and what finance does to it."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from billing import selectors, services
from billing.views.common import _user
from portal.roles import Capability, can
from portal.validation import error_text
from portal.views import require_capability


@login_required
def invoice_detail(request: HttpRequest, pk: str) -> HttpResponse:
    require_capability(request, Capability.VIEW_INVOICES)
    user = _user(request)
    invoice = get_object_or_404(selectors.invoices_visible_to(user), pk=pk)
    lines = list(invoice.lines.order_by("position"))
    credited = sum((n.total for n in invoice.credit_notes.all()), Decimal("0"))
    return render(
        request,
        "billing/invoice_detail.html",
        {
            "invoice": invoice,
            "lines": lines,
            "credit_notes": invoice.credit_notes.order_by("created_at"),
            "credited": credited,
            "can_run": can(user, Capability.RUN_INVOICES),
            "can_dispute": can(user, Capability.DISPUTE_INVOICES) and invoice.status in ("finalized", "paid"),
            # Dispute tickets (support links them to the invoice; shown to who may see the invoice).
            "disputes": invoice.tickets.order_by("created_at") if hasattr(invoice, "tickets") else [],
            "tax_percent": format((invoice.tax_rate * 100).normalize(), "f"),
            "line_spec": {"invoice": str(invoice.pk)},
        },
    )


INVOICE_ACTIONS = ("finalize", "void", "mark-paid", "credit-note")


@login_required
@require_POST
def invoice_action(request: HttpRequest, pk: str, action: str) -> HttpResponseBase:
    require_capability(request, Capability.RUN_INVOICES)
    user = _user(request)
    invoice = get_object_or_404(selectors.invoices_visible_to(user), pk=pk)
    if action not in INVOICE_ACTIONS:
        return redirect("invoice_detail", pk=invoice.pk)
    try:
        if action == "finalize":
            invoice = services.invoice_finalize(actor=user, invoice=invoice)
            messages.success(request, f"Finalized as {invoice.number}.")
        elif action == "void":
            services.invoice_void(actor=user, invoice=invoice, reason=request.POST.get("reason", ""))
            messages.success(request, "Invoice voided. The next run for its period makes a new draft.")
        elif action == "mark-paid":
            services.invoice_mark_paid(actor=user, invoice=invoice)
            messages.success(request, "Payment recorded.")
        else:
            try:
                amount = Decimal(request.POST.get("amount", "").strip().replace(",", "."))
            except InvalidOperation:
                raise ValidationError({"amount": "Give the amount as a number, e.g. 25.00."}) from None
            if not amount.is_finite():
                raise ValidationError({"amount": "Give the amount as a number, e.g. 25.00."})
            note = services.credit_note_create(
                actor=user, invoice=invoice, amount=amount, reason=request.POST.get("reason", "")
            )
            messages.success(request, f"Credit note {note.number} issued: {note.total} {note.currency}.")
    except ValidationError as exc:
        messages.error(request, error_text(exc))
    return redirect("invoice_detail", pk=invoice.pk)
