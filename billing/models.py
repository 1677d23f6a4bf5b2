"""Plans, service contracts, invoice runs, invoices and credit notes.

Money is `Decimal` in `DecimalField`s; a plan's prices are copied into every invoice as a
pricing snapshot, so an invoice can always be re-rated with the prices it was billed with.
A finalized invoice is immutable: `Invoice.save()`, `InvoiceLine.save()/delete()` and their
querysets refuse changes (docs/billing.md), and the database refuses a second live invoice
for the same contract and period.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from billing.rating import ChargeModel, Component, CreditStep, Pricing, Tier
from portal.models import CURRENCY_CHOICES
from portal.priority import PRIORITIES
from portal.tenancy import StaffOnlyQuerySet, TenantOwned, TenantQuerySet, customer_id_scope


def money_field(**options: Any) -> Any:
    """An amount in a currency: two decimals (every supported currency has a minor unit of 2)."""
    return models.DecimalField(max_digits=16, decimal_places=2, **options)


def price_field(**options: Any) -> Any:
    return models.DecimalField(max_digits=18, decimal_places=6, **options)


def quantity_field(**options: Any) -> Any:
    return models.DecimalField(max_digits=24, decimal_places=6, **options)


class InvoiceLockedError(ValidationError):
    """A change to a finalized (or paid, or void) invoice or its lines."""


class PlanQuerySet(models.QuerySet["Plan"]):
    def visible_to(self, user: Any) -> PlanQuerySet:
        """Staff see the catalogue; a customer sees only the plans of its own contracts."""
        scope = customer_id_scope(user)
        if scope is False:
            return self.none()
        if scope is None:
            return self.all()
        # A subquery, not a join: no duplicates to remove, and applying it twice costs nothing.
        return self.filter(pk__in=Contract.objects.filter(customer_id=str(scope)).values("plan_id"))


class Plan(models.Model):
    """A price list: a period fee and price components per counter metric."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    currency = models.CharField(max_length=3, choices=CURRENCY_CHOICES, default="EUR")
    period_fee = money_field(validators=[MinValueValidator(Decimal("0"))])
    minimum_commitment = money_field(null=True, blank=True, validators=[MinValueValidator(Decimal("0"))])
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PlanQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"

    def pricing(self) -> Pricing:
        return Pricing(
            currency=self.currency,
            period_fee=self.period_fee,
            minimum_commitment=self.minimum_commitment,
            components=tuple(c.as_component() for c in self.components.all()),
            plan=self.code,
        )


class PriceComponent(models.Model):
    """How one counter metric (a meter) is charged under a plan."""

    CHARGE_MODELS = [(m, m.replace("_", " ")) for m in ChargeModel.ALL]

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="components")
    metric = models.CharField(max_length=60, help_text="A counter metric code, e.g. run_hours.")
    label = models.CharField(max_length=120, blank=True)
    unit = models.CharField(max_length=20, blank=True)
    charge_model = models.CharField(max_length=20, choices=CHARGE_MODELS)
    unit_price = price_field(default=Decimal("0"), validators=[MinValueValidator(0)])
    included_units = quantity_field(default=Decimal("0"), validators=[MinValueValidator(0)])
    package_size = quantity_field(null=True, blank=True)
    package_price = price_field(default=Decimal("0"), validators=[MinValueValidator(0)])
    # [{"up_to": "100" | null, "unit_price": "0.50", "flat_fee": "0"}], ordered, last up_to null.
    tiers = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["plan", "id"]  # the order the plan lists them in
        constraints = [
            models.UniqueConstraint(fields=["plan", "metric"], name="one_component_per_plan_metric")
        ]

    def __str__(self) -> str:
        return f"{self.plan_id} {self.metric} {self.charge_model}"

    def clean(self) -> None:
        errors = validate_component(
            self.charge_model, self.tiers, self.package_size, unit_price=self.unit_price
        )
        if errors:
            raise ValidationError(errors)

    def as_component(self) -> Component:
        return Component(
            metric=self.metric,
            charge_model=self.charge_model,
            label=self.label,
            unit=self.unit,
            unit_price=self.unit_price,
            included_units=self.included_units,
            package_size=self.package_size,
            package_price=self.package_price,
            tiers=tuple(
                Tier(
                    up_to=None if t.get("up_to") in (None, "") else Decimal(str(t["up_to"])),
                    unit_price=Decimal(str(t["unit_price"])),
                    flat_fee=Decimal(str(t.get("flat_fee") or "0")),
                )
                for t in self.tiers or []
            ),
        )


def validate_component(
    charge_model: str, tiers: Any, package_size: Decimal | None, *, unit_price: Decimal | None = None
) -> dict[str, str]:
    """Field errors of a price component (empty when it is consistent)."""
    errors: dict[str, str] = {}
    if charge_model in (ChargeModel.GRADUATED, ChargeModel.VOLUME):
        if not isinstance(tiers, list) or not tiers:
            return {"tiers": "Graduated and volume pricing need at least one tier."}
        previous = Decimal("0")
        for index, tier in enumerate(tiers):
            if not isinstance(tier, dict) or "unit_price" not in tier:
                return {"tiers": f"Tier {index + 1} needs a unit_price."}
            try:
                price = Decimal(str(tier["unit_price"]))
                fee = Decimal(str(tier.get("flat_fee") or "0"))
                up_to = tier.get("up_to")
                bound = None if up_to in (None, "") else Decimal(str(up_to))
            except ArithmeticError:
                return {"tiers": f"Tier {index + 1} has a value that is not a decimal number."}
            if isinstance(tier["unit_price"], float) or isinstance(up_to, float):
                return {"tiers": f"Tier {index + 1}: give amounts as decimal strings, not floats."}
            if not price.is_finite() or price < 0 or not fee.is_finite() or fee < 0:
                return {"tiers": f"Tier {index + 1}: prices and fees are finite and not negative."}
            last = index == len(tiers) - 1
            if bound is None and not last:
                return {"tiers": "Only the last tier may be open-ended (up_to null)."}
            if last and bound is not None:
                return {"tiers": "The last tier must be open-ended (up_to null)."}
            if bound is not None:
                if not bound.is_finite() or bound <= previous:
                    return {"tiers": "Tier bounds must increase and be above zero."}
                previous = bound
    elif tiers:
        errors["tiers"] = "Only graduated and volume pricing have tiers."
    if charge_model == ChargeModel.PACKAGE and (package_size is None or package_size <= 0):
        errors["package_size"] = "Package pricing needs a package size above zero."
    return errors


class ContractStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    ENDED = "ended", "Ended"


# Contracts in these states are billed for the days of a period they cover.
BILLABLE_CONTRACT_STATUSES = (ContractStatus.ACTIVE, ContractStatus.ENDED)


class Contract(TenantOwned):
    """A service contract: a customer's assets under a plan, with dates and SLA terms."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    number = models.CharField(max_length=40, unique=True)
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="contracts")
    start_date = models.DateField()
    end_date = models.DateField(null=True, blank=True, help_text="The last day covered (inclusive).")
    status = models.CharField(max_length=20, choices=ContractStatus.choices, default=ContractStatus.DRAFT)
    # SLA terms: minutes per ticket priority {"P1": 60, ...}, the uptime target in percent and
    # the service-credit schedule [{"below": "99.5", "credit_percent": "5"}, ...].
    first_response_minutes = models.JSONField(default=dict, blank=True)
    resolution_minutes = models.JSONField(default=dict, blank=True)
    uptime_target = models.DecimalField(max_digits=6, decimal_places=3, null=True, blank=True)
    service_credits = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["number"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=models.F("start_date")),
                name="contract_ends_after_it_starts",
            )
        ]

    def __str__(self) -> str:
        return self.number

    def clean(self) -> None:
        errors = validate_sla_terms(
            self.first_response_minutes, self.resolution_minutes, self.uptime_target, self.service_credits
        )
        if self.end_date and self.start_date and self.end_date < self.start_date:
            errors["end_date"] = "The contract cannot end before it starts."
        if errors:
            raise ValidationError(errors)

    def credit_schedule(self) -> list[CreditStep]:
        return [
            CreditStep(Decimal(str(step["below"])), Decimal(str(step["credit_percent"])))
            for step in self.service_credits or []
        ]


def validate_sla_terms(
    first_response: Any, resolution: Any, uptime_target: Decimal | None, credits: Any
) -> dict[str, str]:
    errors: dict[str, str] = {}
    for name, value in (("first_response_minutes", first_response), ("resolution_minutes", resolution)):
        if not isinstance(value, dict) or any(
            key not in PRIORITIES or isinstance(v, bool) or not isinstance(v, int) or v <= 0
            for key, v in value.items()
        ):
            errors[name] = "A map of priority (P1–P4) to a whole number of minutes above zero."
    if uptime_target is not None and not (Decimal("0") < uptime_target <= Decimal("100")):
        errors["uptime_target"] = "A percentage above 0 and at most 100."
    if not isinstance(credits, list):
        errors["service_credits"] = 'A list of {"below": "99.5", "credit_percent": "5"}.'
    else:
        for step in credits:
            try:
                below = Decimal(str(step["below"]))
                percent = Decimal(str(step["credit_percent"]))
                ok = 0 < below <= 100 and 0 <= percent <= 100 and not isinstance(step["below"], float)
            except (KeyError, TypeError, ArithmeticError):
                ok = False
            if not ok:
                errors["service_credits"] = (
                    'Each step is {"below": "<uptime %>", "credit_percent": "<0–100>"} with decimal strings.'
                )
                break
    return errors


class ContractAsset(models.Model):
    """An asset under a contract from `covered_from` until `covered_until` (open: still covered)."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="coverages")
    asset = models.ForeignKey("fleet.Asset", on_delete=models.PROTECT, related_name="coverages")
    covered_from = models.DateTimeField()
    covered_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["contract", "covered_from"]
        indexes = [models.Index(fields=["asset", "covered_from"], name="coverage_asset_from")]

    def __str__(self) -> str:
        return f"{self.asset_id} under {self.contract_id}"


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
    MUTABLE_AFTER_FINALIZE = frozenset({"status", "paid_at", "voided_at", "void_reason", "updated_at"})

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

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.number
