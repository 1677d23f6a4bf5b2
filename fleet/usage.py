"""Counter readings → usage, as docs/billing.md ("The rules") and docs/ingest.md ("Usage from
counters", "Implausible readings") state it.

Usage between two consecutive readings of a counter (in `seq` order) is the increase, or —
when the counter went down (a reset, a board swap) — the new reading itself, counted from
zero. Each reading carries the usage it adds (`Heartbeat.increments`), attributed to the UTC
hour of its own `ts`; the first reading a device ever sends is the baseline and adds nothing.

A counter metric may have a plausibility bound (`MetricDefinition.max_rate_per_hour`): a
reading whose increment over its baseline exceeds the bound × the hours between their `ts`
(at least one minute's worth) is *flagged*. A flagged reading adds nothing and is nobody's
baseline until staff accept it (then it counts, and is a baseline, like any other reading) or
reject it (it stays out for good). So the baseline of a reading is the nearest reading before
it that counts, and a glitch of 9e14 between 0.5 and 1.0 adds 0.5, not 9e14 nor 1.0.

Because a reading's judgement and increment depend only on the readings before it (and the
staff decisions), the stored increments — and so the hourly sums — are a function of the set
of readings and decisions, whatever order and however many times they arrive: a late reading
recomputes its own increment and those after it up to the first that counted before and
still counts, and the differences are applied to the hourly totals.

Pure: no database, `Decimal` only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Context, Decimal, localcontext
from enum import StrEnum

QUANTUM = Decimal("0.000001")
ZERO = Decimal("0").quantize(QUANTUM)
# However close two readings' times are, a bound allows at least one minute's rise: device
# clocks jitter, and two readings a millisecond apart would allow next to nothing.
MIN_SPAN = timedelta(minutes=1)
_MICROSECOND = timedelta(microseconds=1)
_HOUR = timedelta(hours=1) // _MICROSECOND
# Enough digits for the products of `beyond` to be exact: rise < 1e15 (6 places), bound < 1e14,
# span < 1e17 µs. The default 28 would round the largest, and a rounded comparison could
# judge a reading differently from the reference.
EXACT = Context(prec=64)


class Judgement(StrEnum):
    """What a reading's increment does to usage. `pending` and `rejected` add nothing."""

    PLAIN = "plain"  # within the bound (or no bound): counts
    PENDING = "pending"  # beyond the bound, waiting for staff
    ACCEPTED = "accepted"  # beyond the bound, staff said it is real: counts
    REJECTED = "rejected"  # beyond the bound, staff said it is not: stays out

    @property
    def counts(self) -> bool:
        return self in (Judgement.PLAIN, Judgement.ACCEPTED)


DECISIONS = (Judgement.ACCEPTED, Judgement.REJECTED)


def as_decimal(value: float | int | str | Decimal) -> Decimal:
    """A JSON number as the decimal it was written as (never via binary float arithmetic)."""
    return Decimal(str(value)).quantize(QUANTUM)


def increment(previous: Decimal | None, current: Decimal) -> Decimal:
    if previous is None:
        return ZERO
    if current >= previous:
        return current - previous
    return current  # a reset: counted from zero


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class Baseline:
    """The reading a counter's next increment is measured from: the newest one that counts.

    `ts` is None for a baseline kept from before readings carried their time
    (`Device.counter_state` entries of two elements): the next reading is not judged.
    """

    seq: int
    value: Decimal
    ts: datetime | None


def allowed(bound: Decimal, since: datetime, until: datetime) -> Decimal:
    """The most a counter with `bound` (per hour) may rise from `since` to `until`."""
    span = max(until - since, MIN_SPAN) // _MICROSECOND
    return bound * span / _HOUR


def beyond(bound: Decimal, since: datetime, rise: Decimal, ts: datetime) -> bool:
    """Whether `rise` from `since` to `ts` exceeds `bound` × the hours between (at least a
    minute's worth), multiplied out. Exact only in the EXACT context: a caller judging many
    readings enters it once (`localcontext(EXACT)`), `plausible` enters it itself."""
    return rise * _HOUR > bound * (max(ts - since, MIN_SPAN) // _MICROSECOND)


def plausible(bound: Decimal | None, baseline: Baseline | None, rise: Decimal, ts: datetime) -> bool:
    """Whether an increment of `rise` at `ts` over `baseline` is within `bound`."""
    if bound is None or baseline is None or baseline.ts is None:
        return True
    with localcontext(EXACT):
        return not beyond(bound, baseline.ts, rise, ts)


@dataclass
class Reading:
    """One counter reading in a series being folded.

    `stored_increment` is what it adds to usage now (None: not stored yet); `stored` its
    judgement now (None: not stored yet; stored readings without a flag are PLAIN); a staff
    decision (ACCEPTED, REJECTED) is kept whatever the fold finds.
    """

    seq: int
    value: Decimal
    ts: datetime
    stored_increment: Decimal | None
    stored: Judgement | None = None

    @property
    def hour(self) -> datetime:
        return hour_of(self.ts)


@dataclass
class Folded:
    """A reading after a fold: its increment over its baseline, its judgement, and `delta`,
    what the hourly total of its hour must change by (its new usage minus its stored one)."""

    reading: Reading
    increment: Decimal
    judgement: Judgement
    delta: Decimal
    baseline: Baseline | None

    @property
    def usage(self) -> Decimal:
        return self.increment if self.judgement.counts else ZERO


def judge(baseline: Baseline | None, reading: Reading, bound: Decimal | None) -> tuple[Decimal, Judgement]:
    """(increment, judgement) of `reading` after `baseline`."""
    rise = increment(baseline.value if baseline else None, reading.value)
    if reading.stored in DECISIONS:
        return rise, reading.stored
    return rise, Judgement.PLAIN if plausible(bound, baseline, rise, reading.ts) else Judgement.PENDING


def fold(
    predecessor: Baseline | None,
    readings: Iterable[Reading],
    bound: Decimal | None = None,
    *,
    then: Iterable[Reading] = (),
) -> list[Folded]:
    """Walk `readings` (any order) after `predecessor`, then the stored readings `then` (in seq
    order, after all of `readings`, read lazily) up to and including the first that counted
    and still counts: after it nothing can change.

    The last element's baseline and judgement give the counter's baseline after the walk.
    """
    out: list[Folded] = []
    for folded in _walk(predecessor, sorted(readings, key=lambda r: r.seq), bound):
        out.append(folded)
    baseline = _after(out, predecessor)
    for folded in _walk(baseline, then, bound):
        out.append(folded)
        stored = folded.reading.stored
        if stored is not None and stored.counts and folded.judgement.counts:
            break
    return out


def _walk(baseline: Baseline | None, readings: Iterable[Reading], bound: Decimal | None) -> Iterator[Folded]:
    for reading in readings:
        rise, judgement = judge(baseline, reading, bound)
        new_usage = rise if judgement.counts else ZERO
        stored_usage = reading.stored_increment if reading.stored_increment is not None else ZERO
        yield Folded(reading, rise, judgement, new_usage - stored_usage, baseline)
        if judgement.counts:
            baseline = Baseline(reading.seq, reading.value, reading.ts)


def _after(folded: list[Folded], predecessor: Baseline | None) -> Baseline | None:
    """The baseline after the readings of `folded` (the predecessor when none counts)."""
    for item in reversed(folded):
        if item.judgement.counts:
            return Baseline(item.reading.seq, item.reading.value, item.reading.ts)
    return predecessor


def baseline_after(folded: list[Folded], predecessor: Baseline | None) -> Baseline | None:
    """The counter's baseline after a fold: its last reading that counts, or `predecessor`."""
    return _after(folded, predecessor)


def usage_truth(
    history: list[tuple[int, float | int | Decimal, datetime]],
    bound: Decimal | None = None,
    decisions: dict[int, Judgement] | None = None,
) -> dict[datetime, Decimal]:
    """Hourly usage from a complete history of (seq, value, ts): the reference the tests use.

    Written from the rules, not from `fold`: in seq order, each reading is measured from the
    newest earlier reading that counts; beyond the bound it counts only when staff accepted
    it (`decisions` by seq).
    """
    decisions = decisions or {}
    totals: dict[datetime, Decimal] = {}
    last: tuple[Decimal, datetime] | None = None
    for seq, value, ts in sorted(history, key=lambda h: h[0]):
        current = as_decimal(value)
        if last is None:
            totals.setdefault(hour_of(ts), ZERO)
            last = (current, ts)
            continue
        rise = current - last[0] if current >= last[0] else current
        micros = max(ts - last[1], MIN_SPAN) // timedelta(microseconds=1)
        with localcontext(prec=80):  # rise ≤ bound × hours, multiplied out so that it is exact
            within = bound is None or rise * 3_600_000_000 <= bound * micros
        decision = decisions.get(seq)
        if decision == Judgement.ACCEPTED or (within and decision != Judgement.REJECTED):
            totals[hour_of(ts)] = totals.get(hour_of(ts), ZERO) + rise
            last = (current, ts)
    return totals
