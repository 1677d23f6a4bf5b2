"""Writes of billing: plans, contracts and their assets, invoice state changes, credit notes.

Payments and the amount due live in `billing.payments`.

The invoice run itself lives in `billing.runs` (its invoices in `billing.invoicing`). Every write
here records an audit entry.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing.metering import local_midnight
from billing.models import (
    Contract,
    ContractAsset,
    ContractStatus,
    CreditNote,
    Invoice,
    InvoiceLockedError,
    InvoiceStatus,
    Plan,
)
from billing.models.contracts import default_down_states
from billing.money import ZERO, as_decimal, money_context, round_money
from billing.payments import invoice_settle
from billing.plans import plan_create as plan_create  # the plan writes live in billing.plans
from billing.plans import plan_update as plan_update
from billing.tasks import credit_note_email, invoice_email
from fleet.models import Asset
from portal import outbox
from portal.models import Customer, User
from portal.numbering import next_number
from portal.services import audit_record

INVOICE_SERIES = "INV"
CREDIT_NOTE_SERIES = "CN"
CONTRACT_SERIES = "C"


# Contracts --------------------------------------------------------------------------------


def _contract_window(contract: Contract) -> tuple[datetime, datetime | None]:
    tz = contract.customer.time_zone
    start = local_midnight(contract.start_date, tz)
    end = local_midnight(contract.end_date + timedelta(days=1), tz) if contract.end_date else None
    return start, end


def _clip_coverages(contract: Contract) -> None:
    """Keep every coverage inside the contract's dates (usage is only billed inside both)."""
    start, end = _contract_window(contract)
    for coverage in contract.coverages.all():
        covered_from = max(coverage.covered_from, start)
        covered_until = coverage.covered_until
        if end is not None:
            covered_until = min(covered_until or end, end)
        if covered_until is not None and covered_until < covered_from:
            covered_until = covered_from
        if (covered_from, covered_until) != (coverage.covered_from, coverage.covered_until):
            coverage.covered_from, coverage.covered_until = covered_from, covered_until
            coverage.save(update_fields=["covered_from", "covered_until"])


def _check_asset_free(contract: Contract, asset: Asset, since: datetime, until: datetime | None) -> None:
    """Refuse a coverage that overlaps another of the same asset (any contract but drafts):
    usage is billed once."""
    if asset.customer_id != contract.customer_id:
        raise ValidationError({"assets": "An asset can only be covered by a contract of its own customer."})
    overlapping = (
        ContractAsset.objects.filter(asset=asset)
        .filter(Q(contract=contract) | ~Q(contract__status=ContractStatus.DRAFT))
        .filter(Q(covered_until__isnull=True) | Q(covered_until__gt=since))
    )
    if until is not None:
        overlapping = overlapping.filter(covered_from__lt=until)
    clash = overlapping.select_related("contract").first()
    if clash is not None:
        which = "this contract" if clash.contract_id == contract.pk else f"contract {clash.contract.number}"
        raise ValidationError({"assets": f"{asset.serial_number} is already covered by {which} then."})


@transaction.atomic
def contract_create(
    *,
    actor: User | None,
    customer: Customer,
    plan: Plan,
    start_date: date,
    end_date: date | None = None,
    number: str = "",
    status: str = ContractStatus.ACTIVE,
    assets: list[Asset] | None = None,
    first_response_minutes: dict[str, int] | None = None,
    resolution_minutes: dict[str, int] | None = None,
    uptime_target: Decimal | None = None,
    service_credits: list[dict[str, str]] | None = None,
    purchase_order: str = "",
    down_states: list[str] | None = None,
    exclude_maintenance: bool = True,
    exclude_customer_stops: bool = False,
    meter_maintenance: bool = True,
) -> Contract:
    """A contract; the availability terms default to docs/availability.md's defaults."""
    if plan.currency != customer.currency:
        raise ValidationError(
            {"plan": f"The plan bills in {plan.currency}; {customer.name} pays in {customer.currency}."}
        )
    contract = Contract(
        customer=customer,
        plan=plan,
        start_date=start_date,
        end_date=end_date,
        number=number or next_number(CONTRACT_SERIES, start_date.year),
        status=status,
        first_response_minutes=first_response_minutes or {},
        resolution_minutes=resolution_minutes or {},
        uptime_target=uptime_target,
        service_credits=service_credits or [],
        purchase_order=purchase_order.strip(),
        down_states=down_states if down_states is not None else default_down_states(),
        exclude_maintenance=exclude_maintenance,
        exclude_customer_stops=exclude_customer_stops,
        meter_maintenance=meter_maintenance,
    )
    contract.full_clean()
    contract.save()
    start, _ = _contract_window(contract)
    for asset in assets or []:
        contract_add_asset(actor=None, contract=contract, asset=asset, covered_from=start)
    audit_record(actor=actor, action="contract.created", target=contract)
    return contract


@transaction.atomic
def contract_update(*, actor: User | None, contract: Contract, **changes: Any) -> Contract:
    if "plan" in changes and changes["plan"].currency != contract.customer.currency:
        raise ValidationError({"plan": "The plan's currency differs from the customer's."})
    _, old_end = _contract_window(contract)
    for field, value in changes.items():
        setattr(contract, field, value)
    contract.full_clean()
    contract.save()
    _, new_end = _contract_window(contract)
    if old_end is not None and (new_end is None or new_end > old_end):
        # Coverages that ran to the old end run on to the new one (or stay open).
        contract.coverages.filter(covered_until=old_end).update(covered_until=new_end)
    _clip_coverages(contract)
    audit_record(actor=actor, action="contract.updated", target=contract, data={"fields": sorted(changes)})
    return contract


@transaction.atomic
def contract_add_asset(
    *, actor: User | None, contract: Contract, asset: Asset, covered_from: datetime | None = None
) -> ContractAsset:
    """Cover `asset` from `covered_from` (default: now, or the contract's start if it is later)."""
    start, end = _contract_window(contract)
    since = max(covered_from or timezone.now(), start)
    if end is not None and since >= end:
        raise ValidationError({"assets": "The contract has ended by then."})
    _check_asset_free(contract, asset, since, end)
    coverage = ContractAsset.objects.create(
        contract=contract, asset=asset, covered_from=since, covered_until=end
    )
    audit_record(actor=actor, action="contract.asset_added", target=contract, data={"asset": str(asset.pk)})
    return coverage


@transaction.atomic
def contract_remove_asset(
    *, actor: User | None, contract: Contract, asset: Asset, at: datetime | None = None
) -> None:
    """End the asset's coverage at `at` (default now); its usage before stays billable."""
    at = at or timezone.now()
    updated = contract.coverages.filter(asset=asset).filter(
        Q(covered_until__isnull=True) | Q(covered_until__gt=at)
    )
    if not updated.exists():
        raise ValidationError({"assets": f"{asset.serial_number} is not covered by this contract."})
    for coverage in updated:
        coverage.covered_until = max(at, coverage.covered_from)
        coverage.save(update_fields=["covered_until"])
    audit_record(actor=actor, action="contract.asset_removed", target=contract, data={"asset": str(asset.pk)})


# Invoices ---------------------------------------------------------------------------------


def _locked(invoice: Invoice) -> Invoice:
    return Invoice.objects.select_for_update().get(pk=invoice.pk)


@transaction.atomic
def invoice_finalize(*, actor: User | None, invoice: Invoice, at: datetime | None = None) -> Invoice:
    """Draft → finalized: the next number of the gap-free yearly sequence; immutable from here.
    `at` back-dates the finalizing (the demo's books of the month before last); default now."""
    invoice = _locked(invoice)
    if invoice.status != InvoiceStatus.DRAFT:
        raise InvoiceLockedError(f"Only a draft can be finalized; this invoice is {invoice.status}.")
    now = at or timezone.now()
    invoice.number = next_number(INVOICE_SERIES, now.year)
    invoice.status = InvoiceStatus.FINALIZED
    invoice.finalized_at = now
    invoice.due_date = now.date() + timedelta(days=settings.BILLING_PAYMENT_TERMS_DAYS)
    # The parties as they are now: what the PDF and the e-invoice print from here on.
    invoice.seller = dict(settings.BILLING_PROVIDER)
    invoice.bill_to = {
        **invoice.customer.billing_identity(),
        "purchase_order": invoice.contract.purchase_order,
    }
    invoice.amount_due = invoice.total  # nothing paid or credited yet
    invoice.save()
    audit_record(actor=actor, action="invoice.finalized", target=invoice, customer=invoice.customer)
    if invoice.amount_due <= ZERO:  # nothing to pay (credits ate the fee): paid as it is issued
        invoice_settle(invoice=invoice)
        audit_record(actor=actor, action="invoice.paid", target=invoice, customer=invoice.customer)
    # The customer gets it with its PDF and XML once this commits (billing.mail; idempotent).
    outbox.enqueue(invoice_email, invoice_id=str(invoice.pk))
    return invoice


@transaction.atomic
def invoice_void(*, actor: User | None, invoice: Invoice, reason: str) -> Invoice:
    """Finalized → void (a draft is voided too, to be billed afresh). Paid invoices need a credit note."""
    invoice = _locked(invoice)
    if invoice.status not in (InvoiceStatus.DRAFT, InvoiceStatus.FINALIZED):
        raise InvoiceLockedError(f"A {invoice.status} invoice cannot be voided; issue a credit note instead.")
    if not reason.strip():
        raise ValidationError({"reason": "Say why the invoice is voided."})
    if invoice.credit_notes.exists():
        raise ValidationError(
            {"invoice": "This invoice has credit notes; correct it with another credit note."}
        )
    if invoice.payments.exists():
        raise ValidationError(
            {"invoice": "Payments were recorded against this invoice; correct it with a credit note."}
        )
    invoice.status = InvoiceStatus.VOID
    invoice.voided_at = timezone.now()
    invoice.void_reason = reason.strip()
    invoice.save()
    audit_record(actor=actor, action="invoice.voided", target=invoice, customer=invoice.customer)
    return invoice


@transaction.atomic
def credit_note_create(*, actor: User | None, invoice: Invoice, amount: Decimal, reason: str) -> CreditNote:
    """Credit `amount` (net) of a finalized or paid invoice, never more than is left to credit."""
    invoice = _locked(invoice)
    if invoice.status not in (InvoiceStatus.FINALIZED, InvoiceStatus.PAID):
        raise ValidationError({"invoice": "Credit notes correct finalized or paid invoices only."})
    if not reason.strip():
        raise ValidationError({"reason": "Say what the credit note corrects."})
    with money_context():
        amount = round_money(as_decimal(amount), invoice.currency)
        if amount <= ZERO:
            raise ValidationError({"amount": "The amount to credit must be above zero."})
        credited = sum((note.amount for note in invoice.credit_notes.all()), ZERO)
        if amount > invoice.subtotal - credited:
            raise ValidationError(
                {"amount": f"At most {invoice.subtotal - credited} {invoice.currency} is left to credit."}
            )
        tax = round_money(amount * invoice.tax_rate, invoice.currency)
    note = CreditNote.objects.create(
        customer_id=invoice.customer_id,
        invoice=invoice,
        number=next_number(CREDIT_NOTE_SERIES, timezone.now().year),
        reason=reason.strip(),
        currency=invoice.currency,
        amount=amount,
        tax=tax,
        total=amount + tax,
        created_by=actor,
    )
    audit_record(
        actor=actor, action="credit_note.created", target=note, customer=invoice.customer,
        data={"invoice": invoice.number, "amount": str(amount)},
    )  # fmt: skip
    # Less is due (a paid invoice goes below zero: a credit owed back, docs/billing.md).
    was = invoice.status
    invoice_settle(invoice=invoice)
    if was != invoice.status:
        audit_record(actor=actor, action="invoice.paid", target=invoice, customer=invoice.customer)
    outbox.enqueue(credit_note_email, credit_note_id=str(note.pk))
    return note
