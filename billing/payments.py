"""Money in and money owed: payments, the amount due, overdue invoices and their reminders.

The amount due of an issued invoice is always

    amount_due = total − Σ credit notes' totals (with tax) − Σ payments

recomputed from those rows under the invoice's row lock (`invoice_settle`) whenever one of them
is added, never adjusted by increments, so two finance users recording at once cannot lose an
update. It reaches zero → the invoice is `paid` (paid_at = now) and no longer overdue. A credit
note on an invoice that is already paid (or one larger than what is left) takes it below zero:
a negative amount due is a credit owed back to the customer (docs/billing.md, "Payments").

Dunning (`overdue_sweep`, Celery beat daily): an issued invoice with something due whose due
date has passed in its customer's time zone is overdue from the day after; at each of
settings.BILLING_REMINDER_DAYS days after the due date a reminder e-mail goes out once
(`InvoiceReminder` is unique per step), through the outbox.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

import django_filters
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet, Sum
from django.utils import timezone

from billing.models import Invoice, InvoiceReminder, InvoiceStatus, Payment, PaymentMethod
from billing.money import ZERO, as_decimal, money_context, round_money
from portal import outbox
from portal.models import User
from portal.roles import Capability, can
from portal.services import audit_record
from portal.validation import validate_day


def local_today(time_zone: str, now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(zoneinfo.ZoneInfo(time_zone or "UTC")).date()


def latest_today(*zones: str) -> date:
    """The latest date it is now in any of `zones`: what "not in the future" allows."""
    return max(local_today(zone) for zone in zones)


def amount_due_of(invoice: Invoice) -> Decimal:
    """total − credit notes (with tax) − payments, from the rows (the invoice's lock held)."""
    credited = invoice.credit_notes.aggregate(s=Sum("total"))["s"] or ZERO
    paid = invoice.payments.aggregate(s=Sum("amount"))["s"] or ZERO
    return invoice.total - credited - paid


def invoice_settle(*, invoice: Invoice) -> Invoice:
    """Recompute the amount due of a locked, issued invoice; paid when nothing is left.

    Call inside the transaction that added the payment or credit note, with the invoice row
    locked (select_for_update). A void invoice keeps its status; a paid one stays paid (a
    negative amount due is a credit owed back)."""
    invoice.amount_due = amount_due_of(invoice)
    fields = ["amount_due", "updated_at"]
    if invoice.status == InvoiceStatus.FINALIZED and invoice.amount_due <= ZERO:
        invoice.status = InvoiceStatus.PAID
        invoice.paid_at = timezone.now()
        fields += ["status", "paid_at"]
    if invoice.amount_due <= ZERO and invoice.overdue_since is not None:
        invoice.overdue_since = None
        fields.append("overdue_since")
    invoice.save(update_fields=fields)
    return invoice


@transaction.atomic
def payment_record(
    *,
    actor: User | None,
    invoice: Invoice,
    amount: Decimal | str,
    received_on: date,
    method: str,
    reference: str = "",
    note: str = "",
) -> Payment:
    """Record money received for a finalized invoice (partial or whole), audited.

    Locks the invoice row: concurrent payments are checked one after the other against what
    is still due, so together they never exceed it. Raises ValidationError with field errors."""
    if actor is not None and not can(actor, Capability.RECORD_PAYMENTS):
        raise ValidationError({"invoice": "Your role does not record payments."})
    invoice = Invoice.objects.select_for_update().select_related("customer").get(pk=invoice.pk)
    if invoice.status != InvoiceStatus.FINALIZED or invoice.amount_due <= ZERO:
        what = "paid" if invoice.status == InvoiceStatus.PAID else invoice.status
        raise ValidationError(
            {"invoice": f"Only a finalized invoice with an amount due takes payments; this one is {what}."}
        )
    errors: dict[str, str] = {}
    try:
        with money_context():
            value = as_decimal(amount.strip().replace(",", ".") if isinstance(amount, str) else amount)
            if not value.is_finite():
                raise ValueError
            rounded = round_money(value, invoice.currency)
    except (TypeError, ValueError, ArithmeticError):
        errors["amount"] = "Give the amount as a number, e.g. 25.00."
    else:
        if rounded != value:
            errors["amount"] = f"Give the amount in whole {invoice.currency} cents (e.g. {rounded})."
        elif rounded <= ZERO:
            errors["amount"] = "The amount must be above zero."
        elif rounded > invoice.amount_due:
            errors["amount"] = f"At most the amount due: {invoice.amount_due} {invoice.currency}."
    zones = [invoice.customer.time_zone] + ([actor.display_time_zone] if actor is not None else [])
    if not isinstance(received_on, date):
        errors["received_on"] = "Give the date the money was received."
    elif received_on > latest_today(*zones):
        errors["received_on"] = "The date the money was received cannot be in the future."
    elif received_on.year < 1970:
        errors["received_on"] = "Give the date the money was received."
    if method not in PaymentMethod.values:
        errors["method"] = f"Choose one of: {', '.join(PaymentMethod.values)}."
    if len(reference) > 140:
        errors["reference"] = "At most 140 characters."
    if errors:
        raise ValidationError(errors)
    payment = Payment.objects.create(
        customer_id=invoice.customer_id,
        invoice=invoice,
        received_on=received_on,
        amount=rounded,
        currency=invoice.currency,
        method=method,
        reference=reference.strip(),
        note=note.strip(),
        created_by=actor,
    )
    invoice_settle(invoice=invoice)
    audit_record(
        actor=actor, action="payment.recorded", target=invoice, customer=invoice.customer,
        data={"payment": str(payment.pk), "amount": str(rounded), "currency": invoice.currency,
              "received_on": received_on.isoformat(), "method": method,
              "amount_due": str(invoice.amount_due)},
    )  # fmt: skip
    if invoice.status == InvoiceStatus.PAID:
        audit_record(actor=actor, action="invoice.paid", target=invoice, customer=invoice.customer)
    return payment


# Overdue and reminders --------------------------------------------------------------------


@dataclass
class SweepResult:
    overdue: int = 0  # invoices newly marked overdue
    cleared: int = 0  # invoices no longer overdue (paid, credited, voided meanwhile)
    reminders: int = 0  # reminder e-mails queued


def reminder_recipients(invoice: Invoice) -> list[str]:
    """The customer's billing address, else its active customer admins (never anyone else's)."""
    customer = invoice.customer
    if customer.billing_email:
        return [customer.billing_email]
    from portal.roles import Role

    admins = User.objects.filter(customer_id=customer.pk, role=Role.CUSTOMER_ADMIN, is_active=True)
    return sorted(admins.values_list("email", flat=True))


def days_overdue(invoice: Invoice, today: date | None = None) -> int:
    if invoice.due_date is None:
        return 0
    today = today or local_today(invoice.customer.time_zone)
    return max((today - invoice.due_date).days, 0)


def reminder_step(days: int) -> int | None:
    """The highest reminder step `days` after the due date has reached, if any."""
    reached = [step for step in sorted(settings.BILLING_REMINDER_DAYS) if step <= days]
    return reached[-1] if reached else None


def overdue_sweep(*, now: datetime | None = None) -> SweepResult:
    """The daily dunning pass (idempotent: a second run the same day changes and sends nothing).

    Each invoice in its own transaction, locked and skipped when someone else holds it (a
    payment being recorded right now): the next day's run picks it up."""
    from billing.tasks import invoice_reminder_send

    now = now or timezone.now()
    result = SweepResult()
    # No longer overdue: paid, credited to zero or voided since.
    stale = Invoice.objects.filter(overdue_since__isnull=False).exclude(
        status=InvoiceStatus.FINALIZED, amount_due__gt=ZERO
    )
    result.cleared = stale.update(overdue_since=None)
    candidates = Invoice.objects.filter(
        status=InvoiceStatus.FINALIZED,
        amount_due__gt=ZERO,
        due_date__lt=now.date() + timedelta(days=1),
    ).values_list("pk", flat=True)
    for pk in list(candidates):
        with transaction.atomic():
            invoice = (
                Invoice.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("customer")
                .filter(pk=pk, status=InvoiceStatus.FINALIZED, amount_due__gt=ZERO)
                .first()
            )
            if invoice is None or invoice.due_date is None:
                continue
            today = local_today(invoice.customer.time_zone, now)
            if today <= invoice.due_date:
                continue  # still due today in the customer's zone
            if invoice.overdue_since is None:
                invoice.overdue_since = invoice.due_date + timedelta(days=1)
                invoice.save(update_fields=["overdue_since", "updated_at"])
                audit_record(actor=None, action="invoice.overdue", target=invoice, customer=invoice.customer)
                result.overdue += 1
            step = reminder_step(days_overdue(invoice, today))
            recipients = reminder_recipients(invoice)
            if step is None or not recipients:
                continue
            try:
                with transaction.atomic():  # a savepoint: the step's row may exist already
                    reminder = InvoiceReminder.objects.create(
                        invoice=invoice, days_overdue=step, sent_to=", ".join(recipients)[:254]
                    )
            except IntegrityError:
                continue
            outbox.enqueue(invoice_reminder_send, reminder_id=reminder.pk)
            audit_record(
                actor=None, action="invoice.reminder_queued", target=invoice, customer=invoice.customer,
                data={"days_overdue": step},
            )  # fmt: skip
            result.reminders += 1
    return result


# Reads: payments as a user may see them, and the filters of the payment list ---------------


def payments_visible_to(user: object) -> QuerySet[Payment]:
    """Finance sees every customer's payments; a customer admin its own (views check the
    capability: viewers never see invoices or payments)."""
    return Payment.objects.visible_to(user).select_related("invoice", "customer", "created_by")


class PaymentFilter(django_filters.FilterSet):
    invoice = django_filters.UUIDFilter(field_name="invoice_id")
    customer = django_filters.UUIDFilter(field_name="customer_id")
    received_from = django_filters.DateFilter(
        field_name="received_on", lookup_expr="gte", help_text="Received on or after (YYYY-MM-DD).",
        validators=[validate_day],
    )  # fmt: skip
    received_to = django_filters.DateFilter(
        field_name="received_on", lookup_expr="lte", help_text="Received on or before (YYYY-MM-DD).",
        validators=[validate_day],
    )  # fmt: skip
    method = django_filters.ChoiceFilter(choices=PaymentMethod.choices)

    class Meta:
        model = Payment
        fields = ["invoice", "customer", "received_from", "received_to", "method"]
