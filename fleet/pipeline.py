"""The heartbeat pipeline behind the ingest view: rate limits, backlog, and the worker's batches.

    ingest view ──commit──> IngestInbox row ──nudge──> Celery `fleet.ingest_drain` (queue ingest)
    drain: claim inbox rows (SKIP LOCKED) → lock their devices → store new heartbeats once per
           (device, seq) → fold counters into hourly usage → update device/asset state →
           delete the claimed rows — one transaction, so a killed worker leaves the rows for
           the next claim and nothing is stored twice.

Redis carries only nudges and rate counters. If it is down, accepted heartbeats still wait
in the database and the beat sweep (`fleet.ingest_sweep`) drains them when a worker runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import redis
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from fleet import alarms, events, telemetry
from fleet.models import (
    ACTIVE_ALARM_STATES,
    Alarm,
    AlarmRule,
    Asset,
    AssetStatus,
    AssetStatusChange,
    Device,
    FailedBatch,
    Heartbeat,
    IngestInbox,
    MetricKind,
)
from fleet.usage import Reading, as_decimal, fold, hour_of

log = logging.getLogger(__name__)

_redis_lock = threading.Lock()
_redis_client: redis.Redis | None = None


def redis_client() -> redis.Redis:
    global _redis_client  # one pool per process
    with _redis_lock:
        if _redis_client is None:
            _redis_client = redis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5
            )
        return _redis_client


def rate_limit_hit(device_id: str, per_minute: int) -> int:
    """Seconds to wait when the device is over its rate this minute, else 0.

    A fixed one-minute window per device in Redis. If Redis is unreachable the limit is not
    enforced (accepting is safe; the inbox is in the database).
    """
    window = int(time.time() // 60)
    key = f"fleet:rate:{device_id}:{window}"
    try:
        pipe = redis_client().pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)
        count = int(pipe.execute()[0])
    except redis.RedisError:
        return 0
    if count > per_minute:
        return max(1, 60 - int(time.time() % 60))
    return 0


_backlog = {"checked": 0.0, "pending": 0}


def backlog_pending(refresh_after: float = 1.0) -> int:
    """Accepted heartbeats not yet stored, read at most once a second per process."""
    now = time.monotonic()
    if now - _backlog["checked"] > refresh_after:
        _backlog["pending"] = IngestInbox.objects.aggregate(n=Sum("count"))["n"] or 0
        _backlog["checked"] = now
    return int(_backlog["pending"])


def backlog_exceeded() -> bool:
    return backlog_pending() > settings.INGEST_BACKLOG_LIMIT


def nudge() -> None:
    """Ask a worker to drain, at most a few times a second however fast requests come."""
    from fleet.tasks import ingest_drain

    try:
        if redis_client().set("fleet:drain-nudged", 1, nx=True, px=200):
            ingest_drain.delay()
    except Exception as exc:  # noqa: BLE001 - the heartbeat is durable; the sweep will drain it
        log.warning("ingest: could not nudge a worker (%s); the sweep will drain", type(exc).__name__)


@dataclass
class BatchResult:
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    failed_rows: int = 0
    changed_assets: list[str] = field(default_factory=list)


def drain(*, max_rows: int = 500, max_items: int = 10_000, time_budget: float = 20.0) -> BatchResult:
    """Process inbox batches until it is empty or the time budget is spent."""
    total = BatchResult()
    deadline = time.monotonic() + time_budget
    while time.monotonic() < deadline:
        result = process_batch(max_rows=max_rows, max_items=max_items)
        if result.rows == 0:
            break
        total.rows += result.rows
        total.stored += result.stored
        total.duplicates += result.duplicates
        total.failed_rows += result.failed_rows
    return total


def process_batch(*, max_rows: int = 500, max_items: int = 10_000) -> BatchResult:
    """Claim one batch of inbox rows and store it, all in one transaction.

    A batch that fails is retried row by row; a row that fails on its own is moved to
    FailedBatch with its error (never dropped, never blocking the rows behind it).
    """
    result = BatchResult()
    with transaction.atomic():
        claimed: list[IngestInbox] = []
        items = 0
        for row in IngestInbox.objects.select_for_update(skip_locked=True).order_by("id")[:max_rows]:
            claimed.append(row)
            items += row.count
            if items >= max_items:
                break
        if not claimed:
            return result
        result.rows = len(claimed)
        try:
            with transaction.atomic():
                _store(claimed, result)
        except Exception:
            log.exception("ingest: a batch of %d rows failed; retrying row by row", len(claimed))
            result.stored = result.duplicates = 0
            result.changed_assets = []
            for row in claimed:
                try:
                    with transaction.atomic():
                        _store([row], result)
                except Exception as exc:
                    log.exception("ingest: inbox row %s set aside", row.pk)
                    FailedBatch.objects.create(
                        device_id=row.device_id,
                        received_at=row.received_at,
                        items=row.items,
                        error=f"{type(exc).__name__}: {exc}"[:5000],
                    )
                    result.failed_rows += 1
        IngestInbox.objects.filter(pk__in=[row.pk for row in claimed]).delete()
        changed = list(result.changed_assets)
        transaction.on_commit(lambda: events.asset_status_changed(asset_ids=changed))
    return result


def _store(rows: list[IngestInbox], result: BatchResult) -> None:
    by_device: dict[str, list[dict[str, Any]]] = defaultdict(list)
    received: dict[int, datetime] = {}  # id(item) -> when the ingest view accepted it
    for row in rows:
        by_device[str(row.device_id)].extend(row.items)
        for item in row.items:
            received[id(item)] = row.received_at
    # Lock the devices (in a fixed order, so two workers cannot deadlock): folding a counter
    # reads a device's neighbouring readings, which a concurrent batch must not change.
    devices = list(
        Device.objects.select_for_update(of=("self",))
        .select_related("asset__model")
        .filter(pk__in=by_device)
        .order_by("pk")
    )
    model_ids = {d.asset.model_id for d in devices}
    counters = _counter_metrics(model_ids)
    rules: dict[Any, list[AlarmRule]] = defaultdict(list)
    for rule in AlarmRule.objects.filter(asset_model_id__in=model_ids, is_active=True):
        rules[rule.asset_model_id].append(rule)
    seqs = {item["seq"] for items in by_device.values() for item in items}
    existing: set[tuple[str, int]] = {
        (str(device_id), seq)
        for device_id, seq in Heartbeat.objects.filter(device_id__in=by_device, seq__in=seqs).values_list(
            "device_id", "seq"
        )
    }
    new_rows: list[tuple[Any, ...]] = []  # HEARTBEAT_COLUMNS but received_at
    usage: dict[tuple[str, str, str, datetime], Decimal] = defaultdict(Decimal)
    rollups: dict[telemetry.Key, list[float]] = {}
    changes = StateChanges()
    # Active alarm keys of every asset in the batch, in one query (not one per device).
    for asset_id, key in Alarm.objects.filter(
        asset_id__in={d.asset_id for d in devices}, state__in=ACTIVE_ALARM_STATES
    ).values_list("asset_id", "key"):
        changes.active_alarms.setdefault(asset_id, set()).add(key)
    for device in devices:
        device_key, customer_key, asset_key = str(device.pk), str(device.customer_id), str(device.asset_id)
        fresh: dict[int, dict[str, Any]] = {}
        for item in by_device[device_key]:
            if (device_key, item["seq"]) in existing or item["seq"] in fresh:
                result.duplicates += 1
                continue
            fresh[item["seq"]] = item
        if not fresh:
            continue
        parsed = [(item, _ts(item["ts"])) for _seq, item in sorted(fresh.items())]
        increments = _fold_device(device, parsed, counters.get(device.asset.model_id, ()), usage)
        for item, ts in parsed:
            telemetry.accumulate(
                rollups, customer_id=customer_key, asset_id=asset_key, ts=ts, metrics=item["metrics"]
            )
            new_rows.append(
                (
                    device.customer_id, device.asset_id, device.pk, item["seq"], ts, item["status"],
                    item["fault_code"], item["metrics"], increments.get(item["seq"], {}), received[id(item)],
                )
            )  # fmt: skip
        _update_device_and_asset(device, parsed, rules.get(device.asset.model_id, []), changes, result)
    changes.write()
    _insert_heartbeats(new_rows)
    result.stored += len(new_rows)
    _add_usage(usage)
    telemetry.write(rollups)


HEARTBEAT_COLUMNS = (
    "customer_id", "asset_id", "device_id", "seq", "ts", "status", "fault_code", "metrics", "increments",
    "received_at",
)  # fmt: skip


def _insert_heartbeats(rows: list[tuple[Any, ...]]) -> None:
    """Insert new heartbeats (tuples in HEARTBEAT_COLUMNS order; received_at is when the
    ingest view accepted them, not when the worker got to them).

    On PostgreSQL with COPY: several times faster than a bulk INSERT of parameters, and this
    is the hot path. Duplicates were dropped under the device locks, so nothing conflicts.
    """
    if connection.vendor != "postgresql":
        Heartbeat.objects.bulk_create(
            [Heartbeat(**dict(zip(HEARTBEAT_COLUMNS, row, strict=True))) for row in rows], batch_size=1000
        )
        return
    from psycopg.types.json import Jsonb

    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(f"COPY {Heartbeat._meta.db_table} ({', '.join(HEARTBEAT_COLUMNS)}) FROM STDIN") as copy:
            for *values, metrics, increments, received_at in rows:
                copy.write_row((*values, Jsonb(metrics), Jsonb(increments), received_at))


def _ts(value: str) -> datetime:
    moment = parse_datetime(value)
    assert moment is not None  # the ingest view wrote it
    return moment


def _counter_metrics(model_ids: set[Any]) -> dict[Any, tuple[str, ...]]:
    from fleet.models import MetricDefinition

    found: dict[Any, list[str]] = defaultdict(list)
    for model_id, code in MetricDefinition.objects.filter(
        asset_model_id__in=model_ids, kind=MetricKind.COUNTER
    ).values_list("asset_model_id", "code"):
        found[model_id].append(code)
    return {k: tuple(sorted(v)) for k, v in found.items()}


def _fold_device(
    device: Device,
    parsed: list[tuple[dict[str, Any], datetime]],
    counter_codes: tuple[str, ...],
    usage: dict[tuple[str, str, str, datetime], Decimal],
) -> dict[int, dict[str, str]]:
    """Fold this device's new readings into usage; returns the new rows' increments by seq."""
    increments: dict[int, dict[str, str]] = defaultdict(dict)
    if not counter_codes:
        return increments
    first_new, last_new = parsed[0][0]["seq"], parsed[-1][0]["seq"]
    in_order = device.last_seq is None or first_new > device.last_seq
    stored_changes: dict[int, dict[str, str]] = defaultdict(dict)
    for code in counter_codes:
        readings = [
            Reading(
                seq=item["seq"],
                value=as_decimal(item["metrics"][code]),
                hour=hour_of(ts),
                stored_increment=None,
            )
            for item, ts in parsed
            if code in item["metrics"]
        ]
        if not readings:
            continue
        if in_order:
            # The common case: everything new comes after what is stored.
            state = device.counter_state.get(code)
            predecessor = as_decimal(state[1]) if state else None
        else:
            predecessor, stored = _stored_neighbours(device, code, first_new, last_new)
            readings.extend(stored)
        for reading, new, delta in fold(predecessor, readings):
            if reading.stored_increment is None:
                increments[reading.seq][code] = str(new)
            elif delta:
                stored_changes[reading.seq][code] = str(new)
            if delta:
                usage[(str(device.customer_id), str(device.asset_id), code, reading.hour)] += delta
    for seq, changes in stored_changes.items():
        row = Heartbeat.objects.get(device=device, seq=seq)
        row.increments = {**row.increments, **changes}
        row.save(update_fields=["increments"])
    return increments


def _stored_neighbours(
    device: Device, code: str, first: int, last: int
) -> tuple[Decimal | None, list[Reading]]:
    """For an out-of-order arrival: the stored reading before `first`, and the stored readings
    from `first` up to and including the first one after `last` (their increments may change)."""
    having = Heartbeat.objects.filter(device=device, metrics__has_key=code)
    before = having.filter(seq__lt=first).order_by("-seq").values_list("metrics", flat=True).first()
    inside = list(
        having.filter(seq__gt=first, seq__lt=last).values_list("seq", "ts", "metrics", "increments")
    )
    after = (
        having.filter(seq__gt=last).order_by("seq").values_list("seq", "ts", "metrics", "increments").first()
    )
    if after is not None:
        inside.append(after)
    stored = [
        Reading(
            seq=seq,
            value=as_decimal(metrics[code]),
            hour=hour_of(ts),
            stored_increment=Decimal(increments[code]) if code in increments else Decimal(0),
        )
        for seq, ts, metrics, increments in inside
    ]
    return (as_decimal(before[code]) if before is not None else None), stored


STATUS_FROM_HEARTBEAT = {"ok": AssetStatus.ONLINE, "warning": AssetStatus.WARNING, "fault": AssetStatus.FAULT}


@dataclass
class StateChanges:
    """Device and asset rows a batch changes, written with one bulk UPDATE each at the end."""

    devices: list[Device] = field(default_factory=list)
    assets: list[Asset] = field(default_factory=list)
    status_changes: list[AssetStatusChange] = field(default_factory=list)
    active_alarms: dict[Any, set[str]] = field(default_factory=dict)

    def write(self) -> None:
        if self.devices:
            Device.objects.bulk_update(self.devices, ["last_seq", "last_seen_at", "counter_state"])
        if self.assets:
            Asset.objects.bulk_update(
                self.assets,
                [
                    "last_seen_at",
                    "last_values",
                    "last_fault_code",
                    "status",
                    "status_changed_at",
                    "rule_state",
                ],
            )
        AssetStatusChange.objects.bulk_create(self.status_changes)


def _update_device_and_asset(
    device: Device,
    parsed: list[tuple[dict[str, Any], datetime]],
    rules: list[AlarmRule],
    changes: StateChanges,
    result: BatchResult,
) -> None:
    newest_item, newest_ts = parsed[-1]
    touched = False
    if device.last_seq is None or newest_item["seq"] > device.last_seq:
        device.last_seq = newest_item["seq"]
        device.last_seen_at = newest_ts
        touched = True
    state = dict(device.counter_state)
    for item, _moment in parsed:
        for code, value in item["metrics"].items():
            if code in state and state[code][0] >= item["seq"]:
                continue
            state[code] = [item["seq"], value]
    if state != device.counter_state:
        device.counter_state = state
        touched = True
    if touched:
        changes.devices.append(device)

    asset = device.asset
    if not device.is_active or asset.decommissioned_at is not None:
        return
    # Only readings newer than what the asset shows describe its present; a late replay is
    # history (stored and counted, but it raises no alarm and sets no status).
    newer = [(item, ts) for item, ts in parsed if asset.last_seen_at is None or ts > asset.last_seen_at]
    if not newer:
        return
    rule_state = dict(asset.rule_state)
    active = changes.active_alarms.setdefault(asset.pk, set())
    for item, ts in newer:
        alarms.evaluate_reading(
            asset=asset, rules=rules, item=item, ts=ts, rule_state=rule_state, active=active
        )
    newest_item, newest_ts = max(newer, key=lambda pair: pair[1])
    status = AssetStatus(STATUS_FROM_HEARTBEAT[newest_item["status"]])
    if alarms.OFFLINE in active:
        alarms.alarm_clear_key(asset=asset, key=alarms.OFFLINE, reason="heartbeats again")
        active.discard(alarms.OFFLINE)
    if status != asset.status:
        changes.status_changes.append(
            AssetStatusChange(
                customer_id=asset.customer_id, asset=asset, previous=asset.status, status=status, at=newest_ts
            )
        )
        asset.status = status
        asset.status_changed_at = timezone.now()
    asset.last_seen_at = newest_ts
    asset.last_values = {**asset.last_values, **newest_item["metrics"]}
    asset.last_fault_code = newest_item["fault_code"]
    asset.rule_state = rule_state
    changes.assets.append(asset)
    result.changed_assets.append(str(asset.pk))


def _add_usage(usage: dict[tuple[str, str, str, datetime], Decimal]) -> None:
    """Add deltas to hourly totals with one upsert (PostgreSQL and SQLite both speak it)."""
    rows = [(c, a, m, h, q) for (c, a, m, h), q in usage.items() if q]
    if not rows:
        return
    now = timezone.now()
    table = "fleet_hourlyusage"
    ops = connection.ops
    uuid_field = Asset._meta.pk
    assert uuid_field is not None
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} (customer_id, asset_id, metric, hour, quantity, updated_at) "  # noqa: S608
            "VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (asset_id, metric, hour) DO UPDATE SET "
            f"quantity = {table}.quantity + excluded.quantity, updated_at = excluded.updated_at",
            [
                (
                    uuid_field.get_db_prep_value(c, connection),
                    uuid_field.get_db_prep_value(a, connection),
                    m,
                    ops.adapt_datetimefield_value(h),
                    ops.adapt_decimalfield_value(q, 24, 6),
                    ops.adapt_datetimefield_value(now),
                )
                for c, a, m, h, q in rows
            ],
        )


@transaction.atomic
def failed_batch_retry(*, batch: FailedBatch) -> IngestInbox:
    """Put a set-aside batch back into the inbox (after the bug that failed it is fixed)."""
    row = IngestInbox.objects.create(
        device_id=batch.device_id, received_at=batch.received_at, count=len(batch.items), items=batch.items
    )
    batch.retried_at = timezone.now()
    batch.save(update_fields=["retried_at"])
    transaction.on_commit(nudge)
    return row
