"""Late usage: usage that arrived for an earlier, finalized period, billed on the current
invoice as the re-rated difference (docs/billing.md, "Late usage"). The invoice run
(`billing.invoicing`) calls `late_usage_lines` per contract."""

from __future__ import annotations

from decimal import Decimal

from billing import metering
from billing.metering import Period
from billing.models import Contract, Invoice
from billing.money import ZERO
from billing.rating import Line, LineKind, billed_quantities, rate_period


def late_usage_lines(
    contract: Contract,
    period: Period,
    earlier: list[Invoice],
    billed_elsewhere: dict[str, dict[str, Decimal]],
    current: dict[str, dict[str, Decimal]],
) -> tuple[list[tuple[str, Line]], dict[str, dict[str, str]]]:
    """Late usage of earlier finalized periods: the re-rated difference, per period and meter."""
    lines: list[tuple[str, Line]] = []
    billed: dict[str, dict[str, str]] = {}
    for old in sorted(earlier, key=lambda invoice: invoice.period):
        # Both sides at the unit's precision (docs/billing.md, "Rating a period"): late usage
        # is billed once it moves the billed quantity, and re-rates exactly as the period did.
        pricing = old.pricing_snapshot()
        already = billed_quantities(pricing, billed_elsewhere.get(old.period, {}))
        now = billed_quantities(pricing, current.get(old.period, {}))
        delta = {m: now.get(m, ZERO) - already.get(m, ZERO) for m in set(now) | set(already)}
        delta = {m: d for m, d in delta.items() if d != ZERO}
        if not delta:
            continue
        old_period = metering.period_of(old.period, contract.customer.time_zone)
        days = metering.active_days(contract, old_period)
        before = rate_period(pricing, already, active_days=days, days_in_period=old_period.days)
        after = rate_period(pricing, now, active_days=days, days_in_period=old_period.days)
        for line_after in after:
            if line_after.kind != LineKind.USAGE or line_after.metric not in delta:
                continue
            line_before = next(
                x for x in before if x.kind == LineKind.USAGE and x.metric == line_after.metric
            )
            lines.append(
                (
                    old.period,
                    Line(
                        LineKind.LATE_USAGE,
                        f"Late usage {old.period}: {line_after.description}",
                        line_after.amount - line_before.amount,
                        metric=line_after.metric,
                        quantity=delta[line_after.metric],
                        detail={
                            "invoice": old.number,
                            "unit": line_after.detail.get("unit", ""),
                            "billed_quantity": str(already.get(line_after.metric, ZERO)),
                            "metered_quantity": str(now.get(line_after.metric, ZERO)),
                            "billed_amount": str(line_before.amount),
                            "rerated_amount": str(line_after.amount),
                        },
                    ),
                )
            )
        true_up = {  # the minimum commitment's true-up moves when late usage changes the total
            which: sum((x.amount for x in rated if x.kind == LineKind.MINIMUM_TRUE_UP), ZERO)
            for which, rated in (("before", before), ("after", after))
        }
        if true_up["after"] != true_up["before"]:
            lines.append(
                (
                    old.period,
                    Line(
                        LineKind.LATE_ADJUSTMENT,
                        f"Minimum commitment adjustment {old.period}",
                        true_up["after"] - true_up["before"],
                        detail={"invoice": old.number, **{k: str(v) for k, v in true_up.items()}},
                    ),
                )
            )
        billed[old.period] = {m: str(d) for m, d in delta.items()}
    return lines, billed
