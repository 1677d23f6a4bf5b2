"""Service contracts: a customer's assets under a plan, with dates, SLA terms, a purchase-order
reference and negotiated prices that override the plan's for that contract alone."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from billing.models.plans import Plan, PriceTerms
from billing.rating import CreditStep, Pricing
from portal.priority import PRIORITIES
from portal.tenancy import TenantOwned


def default_down_states() -> list[str]:
    """Offline always counts as down; a fault does by default; degraded (warning) only if agreed."""
    return ["offline", "fault"]


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
    # Availability terms (docs/availability.md): which statuses count as down (offline always),
    # and what time is left out of the measured time.
    down_states = models.JSONField(
        default=default_down_states,
        blank=True,
        help_text='Statuses that count as down, e.g. ["offline", "fault"].',
    )
    exclude_maintenance = models.BooleanField(
        default=True, help_text="Maintenance windows are left out of availability."
    )
    exclude_customer_stops = models.BooleanField(
        default=False,
        help_text="Stops support marked as caused by the customer are left out of availability.",
    )
    meter_maintenance = models.BooleanField(
        default=True, help_text="Usage inside maintenance windows is billed (off: left out of metering)."
    )
    purchase_order = models.CharField(
        max_length=60, blank=True, help_text="The customer's order reference, printed on its invoices."
    )
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

    def pricing(self) -> Pricing:
        """The plan's prices with this contract's overrides in place of the plan's components."""
        plan = self.plan.pricing()
        overrides = {
            o.metric: o.as_component(override=o.note or "Negotiated price")
            for o in self.price_overrides.all()
        }
        if not overrides:
            return plan
        components = [overrides.pop(c.metric, c) for c in plan.components]
        return Pricing(
            currency=plan.currency,
            period_fee=plan.period_fee,
            minimum_commitment=plan.minimum_commitment,
            components=(*components, *overrides.values()),
            plan=plan.plan,
            plan_version=plan.plan_version,
        )

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


class ContractPriceOverride(PriceTerms):
    """A negotiated price for one meter of one contract: replaces the plan's component (or adds
    one for a meter the plan does not price). The invoice line names it with `note`."""

    contract = models.ForeignKey(Contract, on_delete=models.CASCADE, related_name="price_overrides")
    note = models.CharField(
        max_length=120, blank=True, help_text='Printed on the invoice line, e.g. "Negotiated 2026-11".'
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["contract", "metric"]
        constraints = [
            models.UniqueConstraint(fields=["contract", "metric"], name="one_override_per_contract_metric")
        ]

    def __str__(self) -> str:
        return f"{self.contract_id} {self.metric} {self.charge_model}"
