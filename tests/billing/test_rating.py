"""The golden table: hand-computed prices for every charge model and every kind of line.

Each case names the expected amount of every line; docs/billing.md walks through the same
numbers. No database: rating is pure.
"""

from __future__ import annotations

from decimal import Decimal as D  # noqa: N817 - the golden table reads better

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.money import money_context, round_money
from billing.rating import (
    ChargeModel,
    Component,
    CreditStep,
    LineKind,
    Pricing,
    Tier,
    rate_component,
    rate_period,
    totals,
)

STEPPED = (Tier(D("100"), D("1.00")), Tier(D("500"), D("0.80")), Tier(None, D("0.50")))
WITH_FEES = (Tier(D("100"), D("1.00"), D("10")), Tier(None, D("0.50"), D("20")))


def per_unit(price: str, included: str = "0") -> Component:
    return Component("run_hours", ChargeModel.PER_UNIT, unit_price=D(price), included_units=D(included))


COMPONENT_CASES = [
    # (case, component, quantity, expected amount)
    ("per unit", per_unit("0.80"), "412.5", "330.00"),
    ("per unit, included units subtracted", per_unit("0.80", "100"), "412.5", "250.00"),
    ("per unit, fewer units than included", per_unit("0.80", "100"), "50", "0.00"),
    ("per unit rounds half up", per_unit("0.125"), "1", "0.13"),
    ("per unit rounds 0.045 up", per_unit("0.015"), "3", "0.05"),
    ("per unit rounds 0.0049 down", per_unit("0.0049"), "1", "0.00"),
    ("graduated across three tiers", Component("m", "graduated", tiers=STEPPED), "650", "495.00"),
    ("graduated on a tier bound", Component("m", "graduated", tiers=STEPPED), "500", "420.00"),
    ("graduated, nothing used", Component("m", "graduated", tiers=STEPPED), "0", "0.00"),
    (
        "graduated flat fee of the first tier only",
        Component("m", "graduated", tiers=WITH_FEES),
        "100",
        "110.00",
    ),
    ("graduated flat fee once a unit is in", Component("m", "graduated", tiers=WITH_FEES), "100.5", "130.25"),
    (
        "graduated after included units",
        Component("m", "graduated", tiers=STEPPED, included_units=D("50")),
        "650",
        "470.00",
    ),
    ("volume: all units at the last tier", Component("m", "volume", tiers=STEPPED), "650", "325.00"),
    ("volume: inclusive upper bound", Component("m", "volume", tiers=STEPPED), "500", "400.00"),
    ("volume: first tier", Component("m", "volume", tiers=STEPPED), "100", "100.00"),
    ("volume: just past a bound", Component("m", "volume", tiers=STEPPED), "100.5", "80.40"),
    ("volume: nothing used costs nothing", Component("m", "volume", tiers=WITH_FEES), "0", "0.00"),
    ("volume with the tier's flat fee", Component("m", "volume", tiers=WITH_FEES), "101", "70.50"),
    (
        "package: blocks rounded up",
        Component("m", "package", package_size=D("100"), package_price=D("25")),
        "250",
        "75.00",
    ),
    (
        "package: exact blocks",
        Component("m", "package", package_size=D("100"), package_price=D("25")),
        "300",
        "75.00",
    ),
    (
        "package: a sliver opens a block",
        Component("m", "package", package_size=D("100"), package_price=D("25")),
        "300.01",
        "100.00",
    ),
    (
        "package: a sliver under the unit's precision is not billed (300.004 → 300.00)",
        Component("m", "package", package_size=D("100"), package_price=D("25")),
        "300.004",
        "75.00",
    ),
    (
        "package after included units",
        Component("m", "package", package_size=D("100"), package_price=D("25"), included_units=D("50")),
        "250",
        "50.00",
    ),
]


def hours(price: str, included: str = "0") -> Component:
    return Component(
        "run_hours", ChargeModel.PER_UNIT, unit="h", unit_price=D(price), included_units=D(included)
    )


# Quantities are billed at their unit's precision, half up (docs/billing.md, "Rating a period"):
# the quantity on the invoice is the quantity priced, so each line recomputes by hand.
PRECISION_CASES = [
    # (case, component, metered quantity, billed quantity, billable, amount)
    ("hours at 2 decimals: 1329.882 h → 1329.88 h, 100 h included, × 1.2",
     hours("1.2", "100"), "1329.882", "1329.88", "1229.88", "1475.86"),
    ("hours round half up: 0.005 h → 0.01 h", hours("100"), "0.005", "0.01", "0.01", "1.00"),
    ("kWh at 1 decimal: 10.05 kWh → 10.1 kWh × 0.25 = 2.525",
     Component("energy_kwh", "per_unit", unit="kWh", unit_price=D("0.25")), "10.05", "10.1", "10.1", "2.53"),
    ("cycles are whole: 5000.4 cycles → 5000 = 5 packages of 1000 at 4.50",
     Component("cycles", "package", unit="cycles", package_size=D("1000"), package_price=D("4.5")),
     "5000.4", "5000", "5000", "22.50"),
    ("cycles: 5000.5 → 5001 opens a sixth package",
     Component("cycles", "package", unit="cycles", package_size=D("1000"), package_price=D("4.5")),
     "5000.5", "5001", "5001", "27.00"),
    ("graduated tiers price the billed quantity: 100.004 h → 100.00 h, all in tier 1",
     Component("run_hours", "graduated", unit="h", tiers=WITH_FEES), "100.004", "100.00", "100.00", "110.00"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "component", "metered", "billed", "billable", "amount"),
    PRECISION_CASES,
    ids=[c[0] for c in PRECISION_CASES],
)
def test_quantities_are_billed_at_their_units_precision(
    case: str, component: Component, metered: str, billed: str, billable: str, amount: str
) -> None:
    charge = rate_component(component, D(metered), "EUR")
    assert (str(charge.quantity), str(charge.billable), str(charge.amount)) == (billed, billable, amount)


@pytest.mark.parametrize(
    ("case", "component", "quantity", "expected"), COMPONENT_CASES, ids=[c[0] for c in COMPONENT_CASES]
)
def test_component_golden_table(case: str, component: Component, quantity: str, expected: str) -> None:
    assert rate_component(component, D(quantity), "EUR").amount == D(expected)


def test_graduated_breakdown_names_every_tier_used() -> None:
    charge = rate_component(Component("m", "graduated", tiers=STEPPED), D("650"), "EUR")
    assert [(row["tier"], row["units"], row["amount"]) for row in charge.breakdown] == [
        ("1", "100", "100"),
        ("2", "400", "320"),
        ("3", "150", "75"),
    ]


PLAN = Pricing(
    currency="EUR",
    period_fee=D("100"),
    components=(Component("run_hours", ChargeModel.PER_UNIT, label="Run hours", unit_price=D("0.50")),),
)
COMMITTED = Pricing(
    currency="EUR",
    period_fee=D("100"),
    minimum_commitment=D("500"),
    components=PLAN.components,
)
CREDITS = [CreditStep(D("99.5"), D("5")), CreditStep(D("99"), D("10"))]
BIG_FEE = Pricing(currency="EUR", period_fee=D("1000"))

PERIOD_CASES = [
    # (case, pricing, run hours, active days, days, uptime, tax rate, {kind: amount}, subtotal, tax, total)
    ("full month", PLAN, "200", 31, 31, None, "0.19",
     {"period_fee": "100.00", "usage": "100.00"}, "200.00", "38.00", "238.00"),
    ("starts on the 17th of October: 15 of 31 days", PLAN, "0", 15, 31, None, "0.19",
     {"period_fee": "48.39", "usage": "0.00"}, "48.39", "9.19", "57.58"),
    ("ends on the 10th of October: 10 of 31 days", PLAN, "10", 10, 31, None, "0",
     {"period_fee": "32.26", "usage": "5.00"}, "37.26", "0.00", "37.26"),
    ("February in a leap year, 29 of 29 days", PLAN, "1", 29, 29, None, "0",
     {"period_fee": "100.00", "usage": "0.50"}, "100.50", "0.00", "100.50"),
    ("minimum commitment true-up", COMMITTED, "300", 31, 31, None, "0",
     {"period_fee": "100.00", "usage": "150.00", "minimum_true_up": "250.00"}, "500.00", "0.00", "500.00"),
    ("minimum commitment prorated", COMMITTED, "300", 15, 31, None, "0",
     {"period_fee": "48.39", "usage": "150.00", "minimum_true_up": "43.55"}, "241.94", "0.00", "241.94"),
    ("minimum commitment exceeded: no true-up", COMMITTED, "1000", 31, 31, None, "0",
     {"period_fee": "100.00", "usage": "500.00"}, "600.00", "0.00", "600.00"),
    ("uptime 99.2 % crosses 99.5 %: 5 % credit", BIG_FEE, "0", 31, 31, "99.2", "0",
     {"period_fee": "1000.00", "service_credit": "-50.00"}, "950.00", "0.00", "950.00"),
    ("uptime 98.7 % crosses 99 %: the lowest threshold wins", BIG_FEE, "0", 31, 31, "98.7", "0",
     {"period_fee": "1000.00", "service_credit": "-100.00"}, "900.00", "0.00", "900.00"),
    ("uptime exactly on target: no credit", BIG_FEE, "0", 31, 31, "99.5", "0",
     {"period_fee": "1000.00"}, "1000.00", "0.00", "1000.00"),
    ("credit comes before tax", BIG_FEE, "0", 31, 31, "98", "0.19",
     {"period_fee": "1000.00", "service_credit": "-100.00"}, "900.00", "171.00", "1071.00"),
    ("credit on a prorated fee", BIG_FEE, "0", 10, 30, "98", "0",
     {"period_fee": "333.33", "service_credit": "-33.33"}, "300.00", "0.00", "300.00"),
    ("tax rounds half up: 10.05 × 19 % = 1.9095", Pricing("EUR", D("10.05")), "0", 31, 31, None, "0.19",
     {"period_fee": "10.05"}, "10.05", "1.91", "11.96"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "pricing", "hours", "days", "of", "uptime", "tax", "lines", "subtotal", "tax_amount", "total"),
    PERIOD_CASES,
    ids=[c[0] for c in PERIOD_CASES],
)
def test_period_golden_table(
    case: str,
    pricing: Pricing,
    hours: str,
    days: int,
    of: int,
    uptime: str | None,
    tax: str,
    lines: dict[str, str],
    subtotal: str,
    tax_amount: str,
    total: str,
) -> None:
    rated = rate_period(
        pricing,
        {"run_hours": D(hours)},
        active_days=days,
        days_in_period=of,
        uptime=None if uptime is None else D(uptime),
        uptime_target=D("99.5"),
        credit_schedule=CREDITS,
    )
    assert {line.kind: str(line.amount) for line in rated} == lines
    result = totals(rated, D(tax), "EUR")
    assert (str(result.subtotal), str(result.tax), str(result.total)) == (subtotal, tax_amount, total)


def test_a_float_never_reaches_a_money_path() -> None:
    """Floats are refused at the door (TypeError) and inside money_context (FloatOperation)."""
    with pytest.raises(TypeError):
        rate_component(per_unit("0.80"), 412.5, "EUR")
    with pytest.raises(TypeError):
        round_money(1.005, "EUR")
    from decimal import FloatOperation

    with money_context(), pytest.raises(FloatOperation):
        D("1.00") < 1.5  # noqa: B015 - the comparison itself must raise
    with money_context(), pytest.raises(FloatOperation):
        max(D("1.00"), 0.5)
    # A float that slipped into a plan (say, from a careless import) stops the rating.
    sloppy = Pricing("EUR", 100.5, components=PLAN.components)
    with pytest.raises(TypeError):
        rate_period(sloppy, {"run_hours": D("1")}, active_days=31, days_in_period=31)
    with pytest.raises(TypeError):
        rate_period(PLAN, {"run_hours": 1.5}, active_days=31, days_in_period=31)  # type: ignore[dict-item]


decimals = st.decimals(
    min_value=D("0"), max_value=D("100000"), places=3, allow_nan=False, allow_infinity=False
)


@st.composite
def falling_tiers(draw: st.DrawFn) -> tuple[Tier, ...]:
    bounds = sorted(draw(st.sets(st.integers(min_value=1, max_value=10_000), min_size=0, max_size=4)))
    prices = sorted(
        draw(st.lists(st.decimals(min_value=D("0.01"), max_value=D("10"), places=2), min_size=len(bounds) + 1,
                      max_size=len(bounds) + 1)),
        reverse=True,
    )  # fmt: skip
    return (*tuple(Tier(D(b), p) for b, p in zip(bounds, prices, strict=False)), Tier(None, prices[-1]))


@given(tiers=falling_tiers(), quantity=decimals)
def test_graduated_never_costs_more_than_every_unit_at_the_top_tier_price(
    tiers: tuple[Tier, ...], quantity: D
) -> None:
    graduated = rate_component(Component("m", "graduated", tiers=tiers), quantity, "EUR").amount
    top = rate_component(per_unit(str(tiers[0].unit_price)), quantity, "EUR").amount
    bottom = rate_component(per_unit(str(tiers[-1].unit_price)), quantity, "EUR").amount
    assert bottom <= graduated <= top


@given(
    fee=st.decimals(min_value=D("0"), max_value=D("10000"), places=2),
    hours=decimals,
    days=st.integers(min_value=1, max_value=31),
    uptime=st.none() | st.decimals(min_value=D("90"), max_value=D("100"), places=4),
    tax=st.decimals(min_value=D("0"), max_value=D("0.3"), places=4),
)
def test_total_is_the_sum_of_the_lines_plus_tax(
    fee: D, hours: D, days: int, uptime: D | None, tax: D
) -> None:
    pricing = Pricing("EUR", fee, minimum_commitment=D("250"), components=PLAN.components)
    lines = rate_period(
        pricing, {"run_hours": hours}, active_days=days, days_in_period=31, uptime=uptime,
        uptime_target=D("99.5"), credit_schedule=CREDITS,
    )  # fmt: skip
    result = totals(lines, tax, "EUR")
    assert result.subtotal == sum(line.amount for line in lines)
    assert result.total == result.subtotal + result.tax
    assert all(line.amount == line.amount.quantize(D("0.01")) for line in lines)
    assert result.tax == (result.subtotal * tax).quantize(D("0.01"), rounding="ROUND_HALF_UP")
    assert sum(1 for line in lines if line.kind == LineKind.PERIOD_FEE) == 1
