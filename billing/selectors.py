"""Reads of billing: usage to date with its projection, scoped querysets for pages and API, and
the filters of the invoice list (one FilterSet for the API list and the page; fleet/selectors.py
says how)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db.models import QuerySet

from billing import availability, metering
from billing.models import Contract, CreditNote, Invoice, InvoiceStatus, Plan
from billing.money import ZERO, money_context
from billing.rating import LineKind, rate_period, totals
from portal.tenancy import customer_id_scope
from portal.validation import FIRST_YEAR, LAST_YEAR


def plans_visible_to(user: Any) -> QuerySet[Plan]:
    """Staff see the catalogue; a customer sees only the plans of its own contracts."""
    return Plan.objects.visible_to(user).prefetch_related("components")


def invoices_visible_to(user: Any) -> QuerySet[Invoice]:
    """Drafts are finance's work in progress: a customer sees an invoice once it is finalized."""
    invoices = Invoice.objects.visible_to(user).select_related("contract", "customer")
    if customer_id_scope(user) is not None:
        # Never issued: drafts, and drafts that were discarded (voided before finalizing).
        invoices = invoices.exclude(status=InvoiceStatus.DRAFT).exclude(
            status=InvoiceStatus.VOID, number__isnull=True
        )
    return invoices


class PeriodValidator(RegexValidator):
    """A month as `YYYY-MM`, in the years a request may name (portal.validation): `0000-01` or
    `9999-12` would overflow the month's bounds in the customer's zone. A RegexValidator, so the
    OpenAPI schema shows the pattern too."""

    def __call__(self, value: Any) -> None:
        super().__call__(value)
        if not FIRST_YEAR <= int(str(value)[:4]) <= LAST_YEAR:
            raise ValidationError(f"A month from {FIRST_YEAR}-01 to {LAST_YEAR}-12.", code="out_of_range")


# A billing period as the API and the pages take it.
validate_period = PeriodValidator(metering.PERIOD_RE, "A month as YYYY-MM, e.g. 2026-10.")


class InvoiceFilter(django_filters.FilterSet):
    period = django_filters.CharFilter(validators=[validate_period], help_text="A month as YYYY-MM.")
    status = django_filters.ChoiceFilter(choices=InvoiceStatus.choices)
    customer = django_filters.UUIDFilter(field_name="customer_id")
    contract = django_filters.UUIDFilter(field_name="contract_id")
    overdue = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        method="filter_overdue",
        help_text="true: overdue (due date passed, something due); false: not.",
    )

    class Meta:
        model = Invoice
        fields = ["period", "status", "customer", "contract", "overdue"]

    def filter_overdue(self, queryset: QuerySet[Invoice], name: str, value: str) -> QuerySet[Invoice]:
        return queryset.filter(overdue_since__isnull=value != "true")


def credit_notes_visible_to(user: Any) -> QuerySet[CreditNote]:
    return CreditNote.objects.visible_to(user).select_related("invoice")


def contracts_visible_to(user: Any) -> QuerySet[Contract]:
    return Contract.objects.visible_to(user).select_related("plan", "customer")


@dataclass
class MeterUsage:
    metric: str
    label: str
    unit: str
    quantity: Decimal
    amount: Decimal
    projected_quantity: Decimal
    projected_amount: Decimal


@dataclass
class ContractUsage:
    contract: Contract
    period: metering.Period
    currency: str
    elapsed: Decimal  # share of the period (the whole calendar month) that has passed, 0–1
    meters: list[MeterUsage]
    period_fee: Decimal
    # What the month end adds to the projection besides fee and meters: the minimum
    # commitment's true-up and a service credit, as (description, amount) rows.
    projected_adjustments: list[tuple[str, Decimal]]
    subtotal_so_far: Decimal
    projected_subtotal: Decimal
    projected_total: Decimal
    uptime: Decimal | None
    uptime_target: Decimal | None
    daily: list[dict[str, Any]]  # [{"metric", "day", "quantity"}], days in the customer's zone

    @property
    def projected_adjustments_total(self) -> Decimal:
        """One row's worth of the month-end adjustments, so the projected column adds up."""
        return sum((amount for _, amount in self.projected_adjustments), ZERO)


def contract_usage(contract: Contract, period_label: str, *, now: datetime) -> ContractUsage:
    """Usage of one contract in one period so far, priced, and projected linearly to the period end."""
    period = metering.period_of(period_label, contract.customer.time_zone)
    pricing = contract.pricing()
    days = metering.active_days(contract, period)
    used = metering.quantities([contract.pk], period).get(str(contract.pk), {})
    uptime = (
        availability.percentages([contract], period, now=now)[str(contract.pk)]
        if now > period.start
        else None
    )
    with money_context():
        total_seconds = Decimal(int((period.end - period.start).total_seconds()))
        passed = Decimal(int((min(max(now, period.start), period.end) - period.start).total_seconds()))
        elapsed = passed / total_seconds
        projected = {
            metric: (quantity / elapsed).quantize(Decimal("0.000001")) if elapsed else ZERO
            for metric, quantity in used.items()
        }
        credits = contract.credit_schedule()
        so_far = rate_period(pricing, used, active_days=days or 1, days_in_period=period.days)
        ahead = rate_period(
            pricing, projected, active_days=days or 1, days_in_period=period.days,
            uptime=uptime, uptime_target=contract.uptime_target, credit_schedule=credits,
        )  # fmt: skip
        meters = []
        for component in pricing.components:
            now_line = next(x for x in so_far if x.kind == LineKind.USAGE and x.metric == component.metric)
            end_line = next(x for x in ahead if x.kind == LineKind.USAGE and x.metric == component.metric)
            meters.append(
                MeterUsage(
                    metric=component.metric,
                    label=component.label or component.metric,
                    unit=component.unit,
                    # The quantities as they would be billed (at the unit's precision).
                    quantity=now_line.quantity if now_line.quantity is not None else ZERO,
                    amount=now_line.amount,
                    projected_quantity=end_line.quantity if end_line.quantity is not None else ZERO,
                    projected_amount=end_line.amount,
                )
            )
        fee = next(x.amount for x in so_far if x.kind == LineKind.PERIOD_FEE) if days else ZERO
        projected_totals = totals(ahead, contract.customer.tax_rate, pricing.currency)
        usage_so_far = sum((m.amount for m in meters), ZERO)
        adjustments = [
            (x.description, x.amount)
            for x in ahead
            if x.kind in (LineKind.MINIMUM_TRUE_UP, LineKind.SERVICE_CREDIT)
        ]
    return ContractUsage(
        contract=contract,
        period=period,
        currency=pricing.currency,
        elapsed=elapsed.quantize(Decimal("0.0001")),
        meters=meters,
        period_fee=fee,
        projected_adjustments=adjustments if days else [],
        subtotal_so_far=fee + usage_so_far,
        projected_subtotal=projected_totals.subtotal if days else ZERO,
        projected_total=projected_totals.total if days else ZERO,
        uptime=uptime,
        uptime_target=contract.uptime_target,
        daily=[
            {"metric": metric, "day": day, "quantity": quantity}
            for metric, days in metering.daily_quantities(contract, period).items()
            for day, quantity in days
        ],
    )
