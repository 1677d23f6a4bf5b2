"""Counters of a batch: new readings folded into hourly usage and the device's baselines,
late readings folded in again, readings beyond their metric's plausibility bound flagged
(docs/billing.md, "Usage from counters"; docs/ingest.md, "The worker"). The pure rules are
fleet/usage.py; this is their use under the device's row lock, with the database.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

import orjson
from django.utils import timezone

from fleet import alarms
from fleet.models import (
    AlarmKind,
    Asset,
    Device,
    Heartbeat,
    ImplausibleReading,
    Severity,
)
from fleet.sql import binding_cursor
from fleet.usage import (
    EXACT,
    QUANTUM,
    ZERO,
    Baseline,
    Folded,
    Judgement,
    Reading,
    allowed,
    as_decimal,
    baseline_after,
    beyond,
    fold,
    hour_of,
)

if TYPE_CHECKING:
    pass


# A counter metric of a model and its plausibility bound (MetricDefinition.max_rate_per_hour).
Counter = tuple[str, Decimal | None]


# The usage a batch adds, by (customer, asset, metric, hour): written by `add_usage`.
Usage = dict[tuple[str, str, str, datetime], Decimal]


@dataclass
class Folding:
    """What folding a device's new readings gives: each new row's increments by seq (what it
    adds to usage), and the counters' new baselines for `Device.counter_state`."""

    increments: dict[int, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    baselines: dict[str, list[Any]] = field(default_factory=dict)


def _baseline(state: list[Any] | None) -> Baseline | None:
    """A counter_state entry [seq, value, ts] (or [seq, value] from before ts was kept)."""
    if not state:
        return None
    ts = datetime.fromisoformat(state[2]) if len(state) > 2 and state[2] else None
    return Baseline(state[0], as_decimal(state[1]), ts)


def _state_entry(baseline: Baseline) -> list[Any]:
    """A baseline as a counter_state entry (the value as a decimal string: no float)."""
    return [baseline.seq, str(baseline.value), baseline.ts.isoformat() if baseline.ts else None]


def fold_device(
    device: Device,
    parsed: list[tuple[dict[str, Any], datetime]],
    counters: tuple[Counter, ...],
    usage: Usage,
    hours: list[datetime] | None = None,
) -> Folding:
    """Fold this device's new readings (in seq order) into usage: the new rows' increments
    and the counters' baselines. Readings beyond a counter's bound are flagged
    (ImplausibleReading, a data-quality alarm) and add nothing (fleet/usage.py). `hours`:
    each reading's UTC hour, if the caller has them."""
    out = Folding()
    if not counters:
        return out
    increments = out.increments
    in_order = device.last_seq is None or parsed[0][0]["seq"] > device.last_seq
    if not in_order:
        for code, bound in counters:
            readings = [
                Reading(
                    seq=item["seq"], value=as_decimal(item["metrics"][code]), ts=ts, stored_increment=None
                )
                for item, ts in parsed
                if code in item["metrics"]
            ]
            if readings:
                refold(device, code, bound, readings, usage, out)
        return out
    # The common case: everything new comes after what is stored. The walk of `fold`, over
    # fresh readings, without building a Reading per value (as_decimal and increment inline);
    # a bound costs one comparison. Usage is added once per run of readings in one hour.
    customer_key, asset_key = str(device.customer_id), str(device.asset_id)
    if hours is None:
        hours = [hour_of(ts) for _, ts in parsed]
    for code, bound in counters:
        stored_state = device.counter_state.get(code)
        baseline = _baseline(stored_state)
        previous = baseline.value if baseline else None
        # With a bound, readings are judged from the baseline's time (unknown for an entry
        # from before it was kept: not judged), all in one exact context.
        judged_from = baseline.ts if bound is not None and baseline else None
        kept: tuple[int, datetime, Any] | None = None  # the newest reading that counts
        flagged: list[Folded] = []
        run_hour: datetime | None = None
        run = ZERO  # usage of the readings in run_hour so far
        with localcontext(EXACT) if bound is not None else nullcontext():
            for (item, ts), hour in zip(parsed, hours, strict=True):
                value = item["metrics"].get(code)
                if value is None:
                    continue
                current = Decimal(str(value)).quantize(QUANTUM)  # as_decimal
                new = ZERO if previous is None else current - previous if current >= previous else current
                if judged_from is not None and bound is not None and beyond(bound, judged_from, new, ts):
                    increments[item["seq"]][code] = str(ZERO)
                    since = (
                        Baseline(kept[0], previous, kept[1]) if kept and previous is not None else baseline
                    )
                    flagged.append(
                        Folded(Reading(item["seq"], current, ts, None), new, Judgement.PENDING, ZERO, since)
                    )
                    continue  # not a baseline: the next reading is measured from the last that counts
                increments[item["seq"]][code] = str(new)
                if new:
                    if hour != run_hour:
                        if run:
                            usage[(customer_key, asset_key, code, run_hour)] += run  # type: ignore[index]
                        run_hour, run = hour, new
                    else:
                        run += new
                previous, kept = current, (item["seq"], ts, value)
                if bound is not None:
                    judged_from = ts
            if run:
                usage[(customer_key, asset_key, code, run_hour)] += run  # type: ignore[index]
        if kept is not None:
            out.baselines[code] = [kept[0], kept[2], kept[1].isoformat()]
        elif flagged and stored_state:
            out.baselines[code] = stored_state  # every reading flagged: the baseline stays
        if flagged:
            _flags_apply(device, code, bound, flagged)
    return out


def refold(
    device: Device,
    code: str,
    bound: Decimal | None,
    readings: list[Reading],
    usage: Usage,
    out: Folding | None = None,
) -> list[Folded]:
    """Fold `readings` (new ones, or a stored one whose decision changed) between their
    stored neighbours, under the device's lock: new rows' increments go to `out`, stored
    rows' changed increments and judgements are written, differences go to `usage`, and the
    counter's baseline to `out.baselines` when the walk reached the newest reading.
    """
    first, last = min(r.seq for r in readings), max(r.seq for r in readings)
    predecessor, inside, following = _stored_neighbours(device, code, first, last, {r.seq for r in readings})
    folded = fold(predecessor, readings + inside, bound, then=following)
    stored_changes: list[tuple[int, datetime, str]] = []
    customer_key, asset_key = str(device.customer_id), str(device.asset_id)
    for item in folded:
        reading = item.reading
        if reading.stored_increment is None:
            if out is not None:
                out.increments[reading.seq][code] = str(item.usage)
        elif item.delta:
            stored_changes.append((reading.seq, reading.ts, str(item.usage)))
        if item.delta:
            usage[(customer_key, asset_key, code, reading.hour)] += item.delta
    _write_increments(device, code, stored_changes)
    # Flags to create, re-judge or drop: every reading not plain now, and those that were.
    _flags_apply(
        device,
        code,
        bound,
        [
            f
            for f in folded
            if f.judgement != Judgement.PLAIN or f.reading.stored not in (None, Judgement.PLAIN)
        ],
    )
    last_item = folded[-1]
    settled = (
        last_item.reading.seq > last
        and last_item.reading.stored is not None
        and last_item.reading.stored.counts
        and last_item.judgement.counts
    )
    if not settled and out is not None:
        after = baseline_after(folded, predecessor)
        if after is not None:
            out.baselines[code] = _state_entry(after)
    return folded


def _stored_neighbours(
    device: Device, code: str, first: int, last: int, folding: set[int]
) -> tuple[Baseline | None, list[Reading], Iterator[Reading]]:
    """For an out-of-order arrival: the newest stored reading before `first` that counts (the
    baseline), the stored readings between `first` and `last` (but those in `folding`), and,
    lazily, those after `last`, each with its judgement (their increments may change).

    Neighbours by seq may lie in any daily partition (a seq says nothing of its `ts`), so each
    statement looks in all of them; they are prepared on the connection (planned once, not
    per call: planning over every partition took longer than running them).
    """
    params = {"device": device.pk, "customer": device.customer_id, "code": code}

    def rows(sql: str, **more: Any) -> list[tuple[Any, ...]]:
        with binding_cursor() as cursor:
            cursor.execute(sql, {**params, **more}, prepare=True)
            return cursor.fetchall()

    def reading(seq: int, ts: datetime, value: str, increment_: str | None, flag: str | None) -> Reading:
        return Reading(
            seq=seq,
            value=as_decimal(_json_loads(value)),
            ts=ts,
            stored_increment=Decimal(increment_) if increment_ is not None else ZERO,
            stored=Judgement(flag) if flag else Judgement.PLAIN,
        )

    before = rows(_BEFORE_SQL, first=first)
    inside = [reading(*row) for row in rows(_BETWEEN_SQL, first=first, last=last) if row[0] not in folding]

    def following() -> Iterator[Reading]:
        after = last
        while True:
            page = rows(_AFTER_SQL, after=after)
            for row in page:
                yield reading(*row)
            if len(page) < FOLLOWING_PAGE:
                return
            after = page[-1][0]

    predecessor = (
        Baseline(before[0][0], as_decimal(_json_loads(before[0][2])), before[0][1]) if before else None
    )
    return predecessor, inside, following()


# Stored readings after a late one read per query: the walk usually stops at the first.
FOLLOWING_PAGE = 8
_json_loads = orjson.loads  # a metric's value as jsonb text: parsed as the JSONField parses it
_HEARTBEATS = Heartbeat._meta.db_table
_FLAGS = ImplausibleReading._meta.db_table
_FLAG_OF = (
    f"FROM {_FLAGS} f WHERE f.customer_id = %(customer)s AND f.device_id = %(device)s "
    "AND f.metric = %(code)s::text AND f.seq = h.seq"
)
_NEIGHBOURS = (
    f"SELECT h.seq, h.ts, (h.metrics -> %(code)s::text)::text, h.increments ->> %(code)s::text, "  # noqa: S608
    f"(SELECT f.status {_FLAG_OF} LIMIT 1) FROM {_HEARTBEATS} h "
    "WHERE h.device_id = %(device)s AND h.metrics ? %(code)s::text "
)
_BEFORE_SQL = (
    f"SELECT h.seq, h.ts, (h.metrics -> %(code)s::text)::text FROM {_HEARTBEATS} h "  # noqa: S608
    "WHERE h.device_id = %(device)s AND h.metrics ? %(code)s::text AND h.seq < %(first)s "
    f"AND NOT EXISTS (SELECT 1 {_FLAG_OF} AND f.status <> '{ImplausibleReading.Status.ACCEPTED}') "
    "ORDER BY h.seq DESC LIMIT 1"
)
_BETWEEN_SQL = _NEIGHBOURS + "AND h.seq > %(first)s AND h.seq < %(last)s ORDER BY h.seq"
_AFTER_SQL = _NEIGHBOURS + f"AND h.seq > %(after)s ORDER BY h.seq LIMIT {FOLLOWING_PAGE}"


def _write_increments(device: Device, code: str, changes: list[tuple[int, datetime, str]]) -> None:
    """Set `code`'s increment of the device's stored readings `changes` (seq, ts, increment)
    in one UPDATE. Each row is named by its whole key (device, seq, ts), so PostgreSQL visits
    only the partitions of those days (run-time pruning on `ts`), not every day's, as a
    look-up by (device, seq) alone must (docs/ingest.md, "Partitioned telemetry")."""
    if not changes:
        return
    with binding_cursor() as cursor:
        cursor.execute(
            f"UPDATE {_HEARTBEATS} h SET increments = h.increments || jsonb_build_object(%b::text, u.value) "  # noqa: S608
            "FROM unnest(%b::bigint[], %b::timestamptz[], %b::text[]) AS u(seq, ts, value) "
            "WHERE h.device_id = %b AND h.seq = u.seq AND h.ts = u.ts",
            [code, [c[0] for c in changes], [c[1] for c in changes], [c[2] for c in changes], device.pk],
            prepare=True,
        )


def alarm_key(code: str) -> str:
    """The data-quality alarm of an asset's counter: one active per asset and metric."""
    return f"counter:{code}"[:64]


def _flags_apply(device: Device, code: str, bound: Decimal | None, folded: list[Folded]) -> None:
    """Keep ImplausibleReading rows in step with the judgements of `folded` (new flags
    created, pending ones re-judged or dropped), and the asset's data-quality alarm with
    them. Staff decisions are left as they are. Costs nothing when nothing is flagged."""
    if not folded:
        return
    asset = device.asset
    rows = ImplausibleReading.objects.for_customer(device.customer_id).filter(device=device, metric=code)
    created, dropped = [], []
    for item in folded:
        reading, judgement = item.reading, item.judgement
        if judgement == Judgement.PLAIN:
            if reading.stored == Judgement.PENDING:
                dropped.append(reading.seq)
            continue
        base = item.baseline
        values = {
            "ts": reading.ts,
            "value": reading.value,
            "baseline_value": base.value if base else None,
            "baseline_ts": base.ts if base else None,
            "increment": item.increment,
            "allowed": allowed(bound, base.ts, reading.ts)
            if bound is not None and base and base.ts
            else ZERO,
        }
        if reading.stored in (None, Judgement.PLAIN):
            created.append(
                ImplausibleReading(
                    customer_id=device.customer_id, asset_id=device.asset_id, device=device, seq=reading.seq,
                    metric=code, **values,
                )
            )  # fmt: skip
        else:
            rows.filter(seq=reading.seq).update(**values)
    if dropped:
        rows.filter(seq__in=dropped, status=ImplausibleReading.Status.PENDING).delete()
    if created:
        ImplausibleReading.objects.bulk_create(created)
        worst = max(created, key=lambda r: r.increment)
        alarms.alarm_raise(
            asset=asset, key=alarm_key(code), kind=AlarmKind.DATA_QUALITY, severity=Severity.WARNING,
            message=(
                f"{asset.name}: {code} rose by {worst.increment.normalize():f} where at most "
                f"{worst.allowed.normalize():f} is plausible; not billed until staff accept or reject it"
            ),
            at=worst.ts,
        )  # fmt: skip
    elif dropped:
        flags_settled(asset=asset, code=code, reason="the readings around it arrived: within the bound")


def flags_settled(*, asset: Asset, code: str, reason: str, actor: Any = None) -> None:
    """Clear the asset's data-quality alarm of `code` when none of its readings is pending."""
    pending = ImplausibleReading.objects.for_customer(asset.customer_id).filter(
        asset=asset, metric=code, status=ImplausibleReading.Status.PENDING
    )
    if not pending.exists():
        alarms.alarm_clear_key(asset=asset, key=alarm_key(code), reason=reason, actor=actor)


def add_usage(usage: dict[tuple[str, str, str, datetime], Decimal]) -> None:
    """Add deltas to hourly totals with one upsert of arrays (server-side binding)."""
    rows = [(c, a, m, h, q) for (c, a, m, h), q in usage.items() if q]
    if not rows:
        return
    now = timezone.now()
    table = "fleet_hourlyusage"
    conflict = (
        "ON CONFLICT (asset_id, metric, hour) DO UPDATE SET "
        f"quantity = {table}.quantity + excluded.quantity, updated_at = excluded.updated_at"
    )
    with binding_cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (customer_id, asset_id, metric, hour, quantity, updated_at) "  # noqa: S608
            "SELECT c, a, m, h, q, %b FROM unnest(%b::uuid[], %b::uuid[], %b::text[], %b::timestamptz[], "
            f"%b::numeric[]) AS u(c, a, m, h, q) {conflict}",
            [
                now, [str(r[0]) for r in rows], [str(r[1]) for r in rows], [r[2] for r in rows],
                [r[3] for r in rows], [r[4] for r in rows],
            ],
        )  # fmt: skip
