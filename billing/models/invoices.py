"""Invoice runs, invoices, their lines and credit notes.

A finalized invoice is immutable: `Invoice.save()`, `InvoiceLine.save()/delete()` and their
querysets refuse changes (docs/billing.md), and the database refuses a second live invoice
for the same contract and period. What may still move after finalizing is its payment state:
the amount due, the overdue date, the e-mail stamp, and paid/void.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from billing.models.contracts import Contract
from billing.models.fields import money_field, price_field, quantity_field
from billing.rating import Pricing
from portal.tenancy import StaffOnlyQuerySet, TenantOwned, TenantQuerySet


class InvoiceLockedError(ValidationError):
    """A change to a finalized (or paid, or void) invoice or its lines."""


class InvoiceRunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class InvoiceRun(models.Model):
    """Finance's request to bill one period: progress of the task that makes the drafts."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    period = models.CharField(max_length=7, help_text="YYYY-MM")
    status = models.CharField(
        max_length=20, choices=InvoiceRunStatus.choices, default=InvoiceRunStatus.QUEUED
    )
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0, help_text="Contracts already finalized.")
    error = models.TextField(blank=True)
    started_by = models.ForeignKey(
        "portal.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = StaffOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"run {self.period} {self.status}"

    @property
    def percent(self) -> int:
        return 100 if self.status == InvoiceRunStatus.DONE else int(100 * self.processed / max(self.total, 1))


class InvoiceRunChunk(models.Model):
    """One chunk of a run's contracts (docs/billing.md, "The invoice run"): the contracts with a
    primary key in (`after`, `last`], billed by one Celery task `billing.invoice_run_chunk`
    that any worker may take. `done_at` and the counts are written in the transaction that
    bills the chunk, so a chunk is counted once however often its task is delivered."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(InvoiceRun, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    after = models.UUIDField(
        null=True, blank=True, help_text="Contracts above this key (none: from the first)."
    )
    last = models.UUIDField(help_text="Contracts up to and including this key.")
    size = models.PositiveIntegerField(help_text="Contracts in the range when the run was planned.")
    processed = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    skipped_count = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=200, blank=True, help_text="The Celery worker that billed it.")
    done_at = models.DateTimeField(null=True, blank=True)

    objects = StaffOnlyQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="one_chunk_per_run_index")]

    def __str__(self) -> str:
        return f"chunk {self.index} of {self.run_id}"


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    FINALIZED = "finalized", "Finalized"
    PAID = "paid", "Paid"
    VOID = "void", "Void"


# Where an issued invoice may go: finalized → paid or void; nothing after that.
ISSUED_NEXT = {"finalized": ("paid", "void")}


class InvoiceQuerySet(TenantQuerySet["Invoice"]):
    def update(self, **kwargs: Any) -> int:
        issued = self.exclude(status=InvoiceStatus.DRAFT)
        if issued.exists() and (
            set(kwargs) - Invoice.MUTABLE_AFTER_FINALIZE
            or kwargs.get("status", InvoiceStatus.PAID) == InvoiceStatus.DRAFT
        ):
            raise InvoiceLockedError("A finalized invoice cannot be changed; issue a credit note instead.")
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        if self.exclude(status=InvoiceStatus.DRAFT).exists():
            raise InvoiceLockedError("A finalized invoice cannot be deleted; void it instead.")
        return super().delete()


class Invoice(TenantOwned):
    """One contract's bill for one period; a draft until finance finalizes it."""

    # What may still change once an invoice is finalized: its payment and void state.
    MUTABLE_AFTER_FINALIZE = frozenset(
        {
            "status", "paid_at", "voided_at", "void_reason", "updated_at",
            "amount_due", "overdue_since", "emailed_at",
        }
    )  # fmt: skip

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    contract = models.ForeignKey(Contract, on_delete=models.PROTECT, related_name="invoices")
    run = models.ForeignKey(
        InvoiceRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="invoices"
    )
    period = models.CharField(
        max_length=7, help_text="YYYY-MM, a calendar month in the customer's time zone."
    )
    period_start = models.DateTimeField()
    period_end = models.DateTimeField(help_text="Exclusive.")
    status = models.CharField(max_length=20, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT)
    number = models.CharField(max_length=20, null=True, blank=True, unique=True)
    currency = models.CharField(max_length=3)
    tax_rate = models.DecimalField(max_digits=5, decimal_places=4)
    subtotal = money_field(default=Decimal("0"))
    tax = money_field(default=Decimal("0"))
    total = money_field(default=Decimal("0"))
    # total − credit notes (with tax) − payments; kept by billing.payments in the same transaction.
    amount_due = money_field(default=Decimal("0"))
    uptime = models.DecimalField(max_digits=7, decimal_places=4, null=True, blank=True)
    pricing = models.JSONField(help_text="The plan's prices this invoice was rated with.")
    # The metered quantity per meter this invoice billed for its own period, and for each
    # earlier period it billed late usage of: {"2026-10": {"run_hours": "412.5"}, ...}.
    billed_quantities = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    due_date = models.DateField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.TextField(blank=True)
    # The parties as they were when the invoice was finalized (docs/billing.md, "Billing
    # identity"): what the PDF and the e-invoice print, whatever is edited later.
    seller = models.JSONField(default=dict, blank=True)
    bill_to = models.JSONField(default=dict, blank=True)
    overdue_since = models.DateField(null=True, blank=True, help_text="Set by the daily dunning task.")
    emailed_at = models.DateTimeField(null=True, blank=True)

    objects = InvoiceQuerySet.as_manager()  # type: ignore[misc]

    class Meta:
        ordering = ["-period", "contract__number"]
        constraints = [
            models.UniqueConstraint(
                fields=["contract", "period"],
                condition=~Q(status="void"),
                name="one_live_invoice_per_contract_period",
            )
        ]
        indexes = [models.Index(fields=["customer", "period"], name="invoice_customer_period")]

    def __str__(self) -> str:
        return self.number or f"draft {self.period} {self.contract_id}"

    @property
    def display_name(self) -> str:
        """The number, or for a draft who and what it bills: "Draft · Acme Cooling · 2026-11"."""
        if self.number:
            return self.number
        return f"Draft · {self.customer.name} · {self.period}"

    @property
    def is_draft(self) -> bool:
        return self.status == InvoiceStatus.DRAFT

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            stored = Invoice.objects.filter(pk=self.pk).values().first()
            if stored and stored["status"] != InvoiceStatus.DRAFT:
                changed = {
                    f.attname
                    for f in self._meta.concrete_fields
                    if f.attname not in self.MUTABLE_AFTER_FINALIZE
                    and getattr(self, f.attname) != stored[f.attname]  # type: ignore[literal-required]
                }
                if self.status != stored["status"] and self.status not in ISSUED_NEXT.get(
                    stored["status"], ()
                ):
                    changed.add("status")
                if changed:
                    raise InvoiceLockedError(
                        f"Invoice {stored['number']} is {stored['status']}; it cannot be changed "
                        f"({', '.join(sorted(changed))}). Issue a credit note instead."
                    )
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        if Invoice.objects.filter(pk=self.pk).exclude(status=InvoiceStatus.DRAFT).exists():
            raise InvoiceLockedError("A finalized invoice cannot be deleted; void it instead.")
        return super().delete(*args, **kwargs)

    def pricing_snapshot(self) -> Pricing:
        return Pricing.from_json(self.pricing)


class InvoiceLineQuerySet(models.QuerySet["InvoiceLine"]):
    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> list[InvoiceLine]:  # type: ignore[override]
        objs = list(objs)
        invoice_ids = {line.invoice_id for line in objs}
        if Invoice.objects.filter(pk__in=invoice_ids).exclude(status=InvoiceStatus.DRAFT).exists():
            raise InvoiceLockedError("The lines of a finalized invoice cannot be changed.")
        return super().bulk_create(objs, *args, **kwargs)  # type: ignore[return-value]

    def _refuse_locked(self) -> None:
        if self.exclude(invoice__status=InvoiceStatus.DRAFT).exists():
            raise InvoiceLockedError("The lines of a finalized invoice cannot be changed.")

    def update(self, **kwargs: Any) -> int:
        self._refuse_locked()
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        self._refuse_locked()
        return super().delete()


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=20)
    description = models.CharField(max_length=300)
    metric = models.CharField(max_length=60, blank=True)
    period = models.CharField(max_length=7, help_text="The period this line bills (earlier for late usage).")
    quantity = quantity_field(null=True, blank=True)
    unit_price = price_field(null=True, blank=True)
    amount = money_field()
    detail = models.JSONField(default=dict, blank=True)

    objects = InvoiceLineQuerySet.as_manager()

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [models.UniqueConstraint(fields=["invoice", "position"], name="line_position_once")]

    def __str__(self) -> str:
        return f"{self.description} {self.amount}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self._refuse_locked()
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        self._refuse_locked()
        return super().delete(*args, **kwargs)

    def _refuse_locked(self) -> None:
        if Invoice.objects.filter(pk=self.invoice_id).exclude(status=InvoiceStatus.DRAFT).exists():
            raise InvoiceLockedError("The lines of a finalized invoice cannot be changed.")


class CreditNote(TenantOwned):
    """A correction of a finalized invoice: an amount credited back, with its own number."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="credit_notes")
    number = models.CharField(max_length=20, unique=True)
    reason = models.TextField()
    currency = models.CharField(max_length=3)
    amount = money_field(help_text="Net amount credited, before tax.")
    tax = money_field()
    total = money_field()
    created_by = models.ForeignKey(
        "portal.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.number
