"""Counter readings → usage, as docs/billing.md ("The rules") and docs/ingest.md ("Usage from
counters") state it.

Usage between two consecutive readings of a counter (in `seq` order) is the increase, or —
when the counter went down (a reset, a board swap) — the new reading itself, counted from
zero. Each reading carries the usage it adds (`Heartbeat.increments`), attributed to the UTC
hour of its own `ts`; the first reading a device ever sends is the baseline and adds nothing.

Because a reading's increment depends only on its predecessor in seq order, the stored
increments — and so the hourly sums — are a function of the set of readings, whatever order
and however many times they arrive: a late reading recomputes its own increment and its
successor's, and the difference is applied to the hourly totals.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

QUANTUM = Decimal("0.000001")


def as_decimal(value: float | int | str | Decimal) -> Decimal:
    """A JSON number as the decimal it was written as (never via binary float arithmetic)."""
    return Decimal(str(value)).quantize(QUANTUM)


def increment(previous: Decimal | None, current: Decimal) -> Decimal:
    if previous is None:
        return Decimal("0").quantize(QUANTUM)
    if current >= previous:
        return current - previous
    return current  # a reset: counted from zero


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


@dataclass
class Reading:
    """One counter reading in a series being folded."""

    seq: int
    value: Decimal
    hour: datetime
    stored_increment: Decimal | None  # None for a reading not stored yet


def fold(predecessor: Decimal | None, readings: Iterable[Reading]) -> list[tuple[Reading, Decimal, Decimal]]:
    """Walk `readings` (any order) after `predecessor`; for each, (reading, new increment, delta).

    `delta` is what the hourly total of the reading's hour must change by: the full increment
    for a new reading, the difference for a stored one whose predecessor changed.
    """
    out = []
    previous = predecessor
    for reading in sorted(readings, key=lambda r: r.seq):
        new = increment(previous, reading.value)
        delta = new - (reading.stored_increment if reading.stored_increment is not None else Decimal(0))
        out.append((reading, new, delta))
        previous = reading.value
    return out


def usage_truth(history: list[tuple[int, float | int, datetime]]) -> dict[datetime, Decimal]:
    """Hourly usage from a complete history of (seq, value, ts): the reference the tests use."""
    totals: dict[datetime, Decimal] = {}
    previous: Decimal | None = None
    for _seq, value, ts in sorted(history, key=lambda h: h[0]):
        current = as_decimal(value)
        inc = increment(previous, current)
        totals[hour_of(ts)] = totals.get(hour_of(ts), Decimal(0)) + inc
        previous = current
    return totals
