"""Plans: price lists of a period fee and price components per meter, and their versions.

A plan's prices are copied into every invoice as a pricing snapshot (with the plan's version),
so an invoice can always be re-rated with the prices it was billed with. Editing a plan that a
finalized invoice was billed with makes a new version: the old prices stay readable as a
`PlanRevision` (docs/billing.md, "Plans and their versions").
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from billing.models.fields import money_field, price_field, quantity_field
from billing.rating import ChargeModel, Component, Pricing, Tier
from portal.models import CURRENCY_CHOICES
from portal.tenancy import customer_id_scope


class PlanQuerySet(models.QuerySet["Plan"]):
    def visible_to(self, user: Any) -> PlanQuerySet:
        """Staff see the catalogue; a customer sees only the plans of its own contracts."""
        scope = customer_id_scope(user)
        if scope is False:
            return self.none()
        if scope is None:
            return self.all()
        # A subquery, not a join: no duplicates to remove, and applying it twice costs nothing.
        from billing.models.contracts import Contract

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
    version = models.PositiveIntegerField(
        default=1, help_text="Raised when prices change after an invoice was finalized with them."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

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
            plan_version=self.version,
        )


class PriceTerms(models.Model):
    """How one counter metric (a meter) is charged: a plan's component or a contract's override."""

    CHARGE_MODELS = [(m, m.replace("_", " ")) for m in ChargeModel.ALL]

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
        abstract = True

    def clean(self) -> None:
        errors = validate_component(
            self.charge_model, self.tiers, self.package_size, unit_price=self.unit_price
        )
        if errors:
            raise ValidationError(errors)

    def as_component(self, *, override: str = "") -> Component:
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
            override=override,
        )


class PriceComponent(PriceTerms):
    """How one meter is charged under a plan."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="components")

    class Meta:
        ordering = ["plan", "id"]  # the order the plan lists them in
        constraints = [
            models.UniqueConstraint(fields=["plan", "metric"], name="one_component_per_plan_metric")
        ]

    def __str__(self) -> str:
        return f"{self.plan_id} {self.metric} {self.charge_model}"


class PlanRevision(models.Model):
    """The prices of one earlier version of a plan, kept when an edit raised its version."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="revisions")
    version = models.PositiveIntegerField()
    pricing = models.JSONField(help_text="Pricing.to_json() of that version.")
    replaced_at = models.DateTimeField(auto_now_add=True)
    replaced_by = models.ForeignKey(
        "portal.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["plan", "-version"]
        constraints = [models.UniqueConstraint(fields=["plan", "version"], name="plan_revision_once")]

    def __str__(self) -> str:
        return f"{self.plan_id} v{self.version}"


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
