"""Rating: the price of a period's usage under a plan, exactly as docs/billing.md states it
("The four charge models" and "Rating a period").

Pure functions over `Decimal`, no database: the invoice run, the usage projection and the
late-usage re-rating all call these, and the golden table in the tests pins every case.

A plan is rated from a `Pricing`, a snapshot of the plan that an invoice keeps, so that
re-rating a finalized period (late usage) uses the prices it was billed with.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import ROUND_CEILING, Decimal
from typing import Any

from billing.money import ZERO, as_decimal, money_context, round_money
from portal.formatting import round_quantity


class ChargeModel:
    PER_UNIT = "per_unit"
    GRADUATED = "graduated"
    VOLUME = "volume"
    PACKAGE = "package"
    ALL = (PER_UNIT, GRADUATED, VOLUME, PACKAGE)


class LineKind:
    PERIOD_FEE = "period_fee"
    USAGE = "usage"
    MINIMUM_TRUE_UP = "minimum_true_up"
    SERVICE_CREDIT = "service_credit"
    LATE_USAGE = "late_usage"
    LATE_ADJUSTMENT = "late_adjustment"


def _dec(value: Any) -> Decimal | None:
    return None if value is None or value == "" else as_decimal(value)


@dataclass(frozen=True)
class Tier:
    up_to: Decimal | None  # inclusive upper bound; None on the last tier
    unit_price: Decimal
    flat_fee: Decimal = ZERO


@dataclass(frozen=True)
class Component:
    metric: str
    charge_model: str
    label: str = ""
    unit: str = ""
    unit_price: Decimal = ZERO
    included_units: Decimal = ZERO
    package_size: Decimal | None = None
    package_price: Decimal = ZERO
    tiers: tuple[Tier, ...] = ()
    override: str = ""  # a contract's negotiated price: what the invoice line says about it


@dataclass(frozen=True)
class Pricing:
    currency: str
    period_fee: Decimal
    minimum_commitment: Decimal | None = None
    components: tuple[Component, ...] = ()
    plan: str = ""
    plan_version: int = 0

    def component(self, metric: str) -> Component | None:
        return next((c for c in self.components if c.metric == metric), None)

    def to_json(self) -> dict[str, Any]:
        def plain(value: Any) -> Any:
            if isinstance(value, Decimal):
                return str(value)
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            if isinstance(value, list | tuple):
                return [plain(v) for v in value]
            return value

        return plain(asdict(self))  # type: ignore[no-any-return,unused-ignore]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pricing:
        components = tuple(
            Component(
                metric=c["metric"],
                charge_model=c["charge_model"],
                label=c.get("label", ""),
                unit=c.get("unit", ""),
                unit_price=_dec(c.get("unit_price")) or ZERO,
                included_units=_dec(c.get("included_units")) or ZERO,
                package_size=_dec(c.get("package_size")),
                package_price=_dec(c.get("package_price")) or ZERO,
                tiers=tuple(
                    Tier(
                        up_to=_dec(t.get("up_to")),
                        unit_price=as_decimal(t["unit_price"]),
                        flat_fee=_dec(t.get("flat_fee")) or ZERO,
                    )
                    for t in c.get("tiers") or []
                ),
                override=c.get("override", ""),
            )
            for c in data.get("components") or []
        )
        return cls(
            currency=data["currency"],
            period_fee=as_decimal(data["period_fee"]),
            minimum_commitment=_dec(data.get("minimum_commitment")),
            components=components,
            plan=data.get("plan", ""),
            plan_version=int(data.get("plan_version") or 0),
        )


@dataclass
class Charge:
    """One component's price for a quantity: the line amount and how it came about."""

    quantity: Decimal  # the metered quantity at its unit's precision: what is billed and shown
    billable: Decimal  # after included units
    amount: Decimal  # rounded to the minor unit
    breakdown: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Line:
    kind: str
    description: str
    amount: Decimal
    metric: str = ""
    quantity: Decimal | None = None
    unit_price: Decimal | None = None
    detail: dict[str, Any] = field(default_factory=dict)


def _tier_bounds(tiers: tuple[Tier, ...]) -> list[tuple[Decimal, Decimal | None, Tier]]:
    bounds, lower = [], ZERO
    for tier in tiers:
        bounds.append((lower, tier.up_to, tier))
        if tier.up_to is None:
            break
        lower = tier.up_to
    return bounds


def billed_quantity(component: Component, quantity: Decimal) -> Decimal:
    """The quantity an invoice bills for a metered one: at its unit's precision, half up
    (docs/billing.md, "Rating a period"), so the quantity shown is the quantity priced."""
    return round_quantity(as_decimal(quantity), component.unit)


def billed_quantities(pricing: Pricing, quantities: dict[str, Decimal]) -> dict[str, Decimal]:
    """Each metered quantity as `pricing` bills it (`billed_quantity`); a metric the pricing has
    no component for is kept as metered. What an invoice records as billed, so that late usage
    is the difference of two quantities rounded by the same rule."""
    billed = {}
    for metric, quantity in quantities.items():
        component = pricing.component(metric)
        billed[metric] = billed_quantity(component, quantity) if component else as_decimal(quantity)
    return billed


def rate_component(component: Component, quantity: Decimal, currency: str) -> Charge:
    """The price of `quantity` units of one meter under `component` (rounded to the unit's
    precision first, `billed_quantity`)."""
    with money_context():
        quantity = billed_quantity(component, quantity)
        billable = max(quantity - component.included_units, ZERO)
        breakdown: list[dict[str, str]] = []
        exact = ZERO
        model = component.charge_model
        if model == ChargeModel.PER_UNIT:
            exact = billable * component.unit_price
        elif model == ChargeModel.GRADUATED:
            for index, (lower, upper, tier) in enumerate(_tier_bounds(component.tiers), start=1):
                if billable <= lower:
                    break
                units = (billable if upper is None else min(billable, upper)) - lower
                tier_amount = units * tier.unit_price + tier.flat_fee
                exact += tier_amount
                breakdown.append(_tier_row(index, lower, upper, units, tier, tier_amount))
        elif model == ChargeModel.VOLUME:
            if billable > ZERO:
                for index, (lower, upper, tier) in enumerate(_tier_bounds(component.tiers), start=1):
                    if lower < billable and (upper is None or billable <= upper):
                        exact = billable * tier.unit_price + tier.flat_fee
                        breakdown.append(_tier_row(index, lower, upper, billable, tier, exact))
                        break
        elif model == ChargeModel.PACKAGE:
            size = component.package_size or Decimal(1)
            packages = (billable / size).to_integral_value(rounding=ROUND_CEILING)
            exact = packages * component.package_price
            breakdown.append(
                {
                    "packages": plain(packages),
                    "package_size": plain(size),
                    "package_price": plain(component.package_price),
                    "amount": plain(exact),
                }
            )
        else:
            raise ValueError(f"unknown charge model {model!r}")
        return Charge(quantity, billable, round_money(exact, currency), breakdown)


def plain(value: Decimal) -> str:
    """A decimal as people write it: 500, 0.1, 12.5 (no exponent, no trailing zeros)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _tier_row(
    index: int, lower: Decimal, upper: Decimal | None, units: Decimal, tier: Tier, amount: Decimal
) -> dict[str, str]:
    return {
        "tier": str(index),
        "from": plain(lower),
        "up_to": "" if upper is None else plain(upper),
        "units": plain(units),
        "unit_price": plain(tier.unit_price),
        "flat_fee": plain(tier.flat_fee),
        "amount": plain(amount),
    }


@dataclass(frozen=True)
class CreditStep:
    below: Decimal  # uptime % under which the credit applies
    credit_percent: Decimal  # of the period fee


def credit_percent(uptime: Decimal | None, target: Decimal | None, schedule: list[CreditStep]) -> Decimal:
    """The credit % for a measured uptime: the lowest threshold crossed wins; none at or above target."""
    if uptime is None or target is None or uptime >= target:
        return ZERO
    crossed = [step for step in schedule if uptime < step.below]
    return min(crossed, key=lambda s: s.below).credit_percent if crossed else ZERO


def rate_period(
    pricing: Pricing,
    quantities: dict[str, Decimal],
    *,
    active_days: int,
    days_in_period: int,
    uptime: Decimal | None = None,
    uptime_target: Decimal | None = None,
    credit_schedule: list[CreditStep] | None = None,
) -> list[Line]:
    """The lines of one contract's period before late usage and tax."""
    currency = pricing.currency
    with money_context():
        lines: list[Line] = []
        fee = round_money(pricing.period_fee * active_days / days_in_period, currency)
        prorated = active_days != days_in_period
        lines.append(
            Line(
                LineKind.PERIOD_FEE,
                "Period fee" + (f" ({active_days} of {days_in_period} days)" if prorated else ""),
                fee,
                quantity=Decimal(active_days),
                unit_price=None,
                detail={
                    "period_fee": str(pricing.period_fee),
                    "active_days": active_days,
                    "days_in_period": days_in_period,
                    "amount": str(fee),
                },
            )
        )
        for component in pricing.components:
            lines.append(usage_line(component, quantities.get(component.metric, ZERO), currency))
        if pricing.minimum_commitment is not None:
            minimum = round_money(pricing.minimum_commitment * active_days / days_in_period, currency)
            so_far = sum((line.amount for line in lines), ZERO)
            if so_far < minimum:
                lines.append(
                    Line(
                        LineKind.MINIMUM_TRUE_UP,
                        "Minimum commitment true-up",
                        minimum - so_far,
                        detail={"minimum": str(minimum), "billed": str(so_far)},
                    )
                )
        percent = credit_percent(uptime, uptime_target, credit_schedule or [])
        if percent > ZERO:
            assert uptime is not None  # credit_percent() is 0 without both
            assert uptime_target is not None
            lines.append(
                Line(
                    LineKind.SERVICE_CREDIT,
                    f"Service credit: uptime {plain(uptime)} % below {plain(uptime_target)} %",
                    -round_money(fee * percent / 100, currency),
                    detail={
                        "uptime": str(uptime),
                        "target": str(uptime_target),
                        "credit_percent": str(percent),
                        "period_fee": str(fee),
                    },
                )
            )
        return lines


def usage_line(component: Component, quantity: Decimal, currency: str) -> Line:
    """One meter's line, with everything a reader needs to recompute it by hand in `detail`:
    the billed quantity, included units, billable quantity, the unit price or the tier /
    package rows, the amount, and the negotiated price it comes from, if any."""
    charge = rate_component(component, quantity, currency)
    per_unit = component.charge_model == ChargeModel.PER_UNIT
    description = component.label or component.metric
    if component.override:
        description = f"{description} (negotiated price: {component.override})"
    return Line(
        LineKind.USAGE,
        description,
        charge.amount,
        metric=component.metric,
        quantity=charge.quantity,
        unit_price=component.unit_price if per_unit else None,
        detail={
            "charge_model": component.charge_model,
            "unit": component.unit,
            "quantity": str(charge.quantity),
            "included_units": str(component.included_units),
            "billable": str(charge.billable),
            "unit_price": str(component.unit_price) if per_unit else None,
            "tiers": charge.breakdown,
            "amount": str(charge.amount),
            "override": component.override,
        },
    )


@dataclass
class Totals:
    subtotal: Decimal
    tax: Decimal
    total: Decimal


def totals(lines: list[Line], tax_rate: Decimal, currency: str) -> Totals:
    """Subtotal of the (already rounded) lines, tax on the subtotal, rounded, and the total."""
    with money_context():
        subtotal = sum((line.amount for line in lines), ZERO)
        tax = round_money(subtotal * as_decimal(tax_rate), currency)
        return Totals(subtotal, tax, subtotal + tax)
