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

import asyncio
import functools
import json
import logging
import math
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
import redis
import redis.asyncio
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import QuerySet, Sum
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
from fleet.sql import binding_cursor
from fleet.usage import Reading, as_decimal, fold, hour_of, increment

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


# The key says "a drain will look at the inbox after now": set with a drain task queued, and
# deleted by a drain only when it has found the inbox empty, after which it looks once more
# (drain()). A nudge that finds the key set needs no task of its own: the drain behind the key
# looks after this request's commit. The expiry bounds how long a lost task (a Redis restart)
# keeps nudges quiet; the beat sweep drains meanwhile.
NUDGE_KEY = "fleet:drain-nudged"
NUDGE_MS = 1000


def nudge() -> None:
    """Make sure a worker drains after this commit: queue a drain task unless one is due."""
    from fleet.tasks import ingest_drain

    client = redis_client()
    try:
        if client.set(NUDGE_KEY, 1, nx=True, px=NUDGE_MS):
            try:
                ingest_drain.delay()
            except Exception:
                client.delete(NUDGE_KEY)  # no task behind the key: let the next one try
                raise
    except Exception as exc:  # noqa: BLE001 - the heartbeat is durable; the sweep will drain it
        log.warning("ingest: could not nudge a worker (%s); the sweep will drain", type(exc).__name__)


def nudge_clear() -> None:
    """A drain found the inbox empty: later commits must queue a task (see NUDGE_KEY)."""
    try:
        redis_client().delete(NUDGE_KEY)
    except Exception as exc:  # noqa: BLE001 - the key expires; the sweep drains meanwhile
        log.warning("ingest: could not clear the nudge key (%s)", type(exc).__name__)


# ----------------------------------------------------------------------------- the lean ASGI path
# The same rate limit, backlog and nudge for fleet.ingest.IngestEndpoint, on an event loop:
# Redis through redis.asyncio, and the Redis work of concurrent requests sent together.

_async_redis: dict[str, Any] = {"loop": None, "client": None}


def async_redis_client() -> redis.asyncio.Redis:
    """One redis.asyncio client per event loop (per process under uvicorn)."""
    loop = asyncio.get_running_loop()
    if _async_redis["loop"] is not loop:
        _async_redis["client"] = redis.asyncio.Redis.from_url(
            settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        _async_redis["loop"] = loop
    client: redis.asyncio.Redis = _async_redis["client"]
    return client


async def close_async_redis_client() -> None:
    """Close the running loop's client (tests; a server process just exits)."""
    if _async_redis["loop"] is asyncio.get_running_loop():
        await _async_redis["client"].aclose()
        _async_redis["loop"] = _async_redis["client"] = None


class RateLimiter:
    """`rate_limit_hit` for many concurrent requests in one Redis round trip.

    Requests that arrive while a round trip is out wait for the next one, which carries all
    of them (INCR and EXPIRE per request, as `rate_limit_hit` sends). The answers are the same
    as one round trip each; only the Python cost per request is smaller.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[str, int, asyncio.Future[int]]] = []
        self._task: asyncio.Task[None] | None = None

    async def hit(self, device_id: str, per_minute: int) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((device_id, per_minute, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            window = int(time.time() // 60)
            retry_after = max(1, 60 - int(time.time() % 60))
            try:
                pipe = async_redis_client().pipeline(transaction=False)
                for device_id, _limit, _future in batch:
                    key = f"fleet:rate:{device_id}:{window}"
                    pipe.incr(key)
                    pipe.expire(key, 120)
                replies = await pipe.execute()
                counts = [int(count) for count in replies[::2]]
            except (TimeoutError, redis.RedisError, OSError):
                counts = [0] * len(batch)  # not enforced without Redis, as in rate_limit_hit
            for (_device, limit, future), count in zip(batch, counts, strict=True):
                if not future.done():
                    future.set_result(retry_after if count > limit else 0)


_backlog_refreshing = {"busy": False}


async def backlog_exceeded_async(read_pending: Any) -> bool:
    """`backlog_exceeded` on an event loop; `read_pending` is a coroutine function returning
    the inbox's SUM(count). One read at a time, at most once a second per process."""
    now = time.monotonic()
    if now - _backlog["checked"] > 1.0 and not _backlog_refreshing["busy"]:
        _backlog_refreshing["busy"] = True
        try:
            _backlog["pending"] = int(await read_pending())
            _backlog["checked"] = time.monotonic()
        finally:
            _backlog_refreshing["busy"] = False
    return int(_backlog["pending"]) > settings.INGEST_BACKLOG_LIMIT


class Nudger:
    """`nudge` on an event loop, with one Redis round trip for many requests.

    Requests that commit while a round is in flight ask for another round, which starts when
    that one ends (at most one every NUDGE_PAUSE seconds while the key is set): every commit
    is followed by a SET NX of its own, which a drain clearing the key cannot have overtaken.
    The Celery publish runs in a thread.
    """

    NUDGE_PAUSE = 0.005

    def __init__(self) -> None:
        self._wanted = False
        self._busy = False
        self._tasks: set[asyncio.Task[None]] = set()

    def nudge(self) -> None:
        self._wanted = True
        if self._busy:
            return
        self._busy = True
        task = asyncio.create_task(self._rounds())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _rounds(self) -> None:
        try:
            while self._wanted:
                self._wanted = False
                if not await self._round():
                    await asyncio.sleep(self.NUDGE_PAUSE)
        finally:
            self._busy = False

    async def _round(self) -> bool:
        """SET NX; queue a drain task when it was not set. True when a task was queued."""
        from fleet.tasks import ingest_drain

        client = async_redis_client()
        try:
            if await client.set(NUDGE_KEY, 1, nx=True, px=NUDGE_MS):
                try:
                    await asyncio.to_thread(ingest_drain.delay)
                except Exception:
                    await client.delete(NUDGE_KEY)  # no task behind the key: let the next one try
                    raise
                return True
        except Exception as exc:  # noqa: BLE001 - the heartbeat is durable; the sweep will drain it
            log.warning("ingest: could not nudge a worker (%s); the sweep will drain", type(exc).__name__)
        return False


@dataclass
class BatchResult:
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    failed_rows: int = 0
    changed_assets: list[str] = field(default_factory=list)


def drain(
    *, max_rows: int | None = None, max_items: int | None = None, time_budget: float = 20.0
) -> BatchResult:
    """Process inbox batches until it is empty or the time budget is spent.

    Empty, it clears the nudge key and looks once more: a request that committed before the
    key was cleared is stored by this drain, one after it queues a task (see NUDGE_KEY).
    """
    total = BatchResult()
    deadline = time.monotonic() + time_budget
    cleared = False
    while True:
        result = process_batch(max_rows=max_rows, max_items=max_items)
        if result.rows == 0:
            if cleared:
                break
            nudge_clear()  # then always one more look, whatever the budget says
            cleared = True
            continue
        cleared = False
        total.rows += result.rows
        total.stored += result.stored
        total.duplicates += result.duplicates
        total.failed_rows += result.failed_rows
        if time.monotonic() >= deadline:
            break  # rows may be left: the task hands over to a new one
    return total


def process_batch(*, max_rows: int | None = None, max_items: int | None = None) -> BatchResult:
    """Claim one batch of inbox rows and store it, all in one transaction.

    Up to INGEST_BATCH_MAX_ROWS rows or INGEST_BATCH_MAX_ITEMS heartbeats. Large batches
    are what make a backlog cheap to catch up on: a device's heartbeats in one batch share
    its state update, its rollup rows and its live message.

    A batch that fails is retried row by row; a row that fails on its own is moved to
    FailedBatch with its error (never dropped, never blocking the rows behind it).
    """
    max_rows = max_rows or settings.INGEST_BATCH_MAX_ROWS
    max_items = max_items or settings.INGEST_BATCH_MAX_ITEMS
    result = BatchResult()
    with transaction.atomic():
        claimed = _claim(max_rows, max_items)
        if not claimed:
            return result
        device_ids = {row.device_id for row in claimed}
        devices, busy = _lock_devices(device_ids, wait=False)
        if busy and busy >= device_ids:
            # Every device is another batch's: wait for them (as a lone device's batches do),
            # rather than give up or come back to poll.
            devices, busy = _lock_devices(device_ids, wait=True)
        # Rows of a device another worker holds stay in the inbox for a later batch: no
        # waiting on its lock when there is other work (batches of many devices overlap).
        claimed = [row for row in claimed if row.device_id not in busy]
        if not claimed:
            return result
        result.rows = len(claimed)
        try:
            with transaction.atomic():
                _store(claimed, result, devices)
        except Exception:
            log.exception("ingest: a batch of %d rows failed; retrying row by row", len(claimed))
            model_rules.clear()  # the retries read the models again: a rule deleted elsewhere may be why
            result.stored = result.duplicates = 0
            result.changed_assets = []
            for row in claimed:
                try:
                    with transaction.atomic():
                        _store([row], result)  # devices read again: the failed try changed them
                except Exception as exc:
                    log.exception("ingest: inbox row %s set aside", row.pk)
                    FailedBatch.objects.create(
                        device_id=row.device_id,
                        received_at=row.received_at,
                        items=row.items,
                        error=f"{type(exc).__name__}: {exc}"[:5000],
                    )
                    result.failed_rows += 1
        _delete_claimed([row.pk for row in claimed])
        changed = list(result.changed_assets)
        transaction.on_commit(lambda: live_publisher.submit(changed))
    return result


def _delete_claimed(pks: list[int]) -> None:
    """The batch's inbox rows are done (stored or set aside): one DELETE."""
    if connection.vendor != "postgresql":
        IngestInbox.objects.filter(pk__in=pks).delete()
        return
    with binding_cursor() as cursor:  # no ORM deletion collector for a table nothing refers to
        cursor.execute(f"DELETE FROM {IngestInbox._meta.db_table} WHERE id = ANY(%b)", [pks])  # noqa: S608


@dataclass
class InboxRow:
    """A claimed inbox row: what `_store` needs of it, without a model instance."""

    pk: int
    device_id: str
    received_at: datetime
    items: list[dict[str, Any]]


def _claim(max_rows: int, max_items: int) -> list[InboxRow]:
    """Lock and read the oldest unclaimed inbox rows: up to `max_rows` rows, stopping at the
    row that brings the batch to `max_items` heartbeats.

    On PostgreSQL through a server-side cursor, where FOR UPDATE SKIP LOCKED locks rows as
    they are fetched: a batch locks only (about) the rows it takes, and a second worker
    takes the next ones.
    """
    claimed: list[InboxRow] = []
    items = 0
    if connection.vendor != "postgresql":
        for row in IngestInbox.objects.select_for_update(skip_locked=True).order_by("id")[:max_rows]:
            claimed.append(InboxRow(row.pk, str(row.device_id), row.received_at, row.items))
            items += row.count
            if items >= max_items:
                break
        return claimed
    connection.ensure_connection()
    table = IngestInbox._meta.db_table
    with connection.connection.cursor(name="fleet_inbox_claim") as cursor:
        cursor.execute(
            f"SELECT id, device_id, received_at, count, items FROM {table} "  # noqa: S608 - our table
            "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
            [max_rows],
        )
        size = 10
        while items < max_items:
            fetched = cursor.fetchmany(size)
            if not fetched:
                break
            for pk, device_id, received_at, count, body in fetched:
                items_ = _json_loads(body) if isinstance(body, str) else body
                claimed.append(InboxRow(pk, str(device_id), received_at, items_))
                items += count
                if items >= max_items:
                    break
            if len(fetched) < size:
                break  # the cursor is at its end: no round trip to be told so
            # Fetch about as many rows as the remaining heartbeats need at the rows' average size.
            size = max(1, min(500, math.ceil((max_items - items) * len(claimed) / max(items, 1))))
    return claimed


# What storing reads of a device and its asset: a batch loads one of each per device, so the
# columns it never reads (and their parsing) are left out. `asset.name` is for alarm texts.
DEVICE_FIELDS = ("id", "customer", "asset", "is_active", "last_seq", "last_seen_at", "counter_state")
ASSET_FIELDS = (
    "id", "customer", "model", "name", "decommissioned_at", "status", "status_changed_at", "last_seen_at",
    "last_values", "last_fault_code", "rule_state",
)  # fmt: skip


def _devices_to_store() -> QuerySet[Device]:
    """Devices with their assets, in id order (the order they are locked in)."""
    return (
        Device.objects.select_related("asset")
        .only(*DEVICE_FIELDS, *(f"asset__{name}" for name in ASSET_FIELDS))
        .order_by("pk")
    )


@functools.cache
def _locking_query() -> tuple[str, list[Any], list[Any]]:
    """`_devices_to_store()` locked, as SQL made once: (sql, device fields, asset fields).

    The ORM compiled the same query for every batch (~2 ms of a one-row batch's CPU); the
    columns are the models' own, in their order, so `Model.from_db` takes the rows as the
    ORM's `.only()` would.
    """
    device = [f for f in Device._meta.concrete_fields if f.name in DEVICE_FIELDS]
    asset = [f for f in Asset._meta.concrete_fields if f.name in ASSET_FIELDS]
    quote = connection.ops.quote_name
    columns = ", ".join(
        [f"d.{quote(str(f.column))}" for f in device] + [f"a.{quote(str(f.column))}" for f in asset]
    )
    sql = (
        f"SELECT {columns} FROM {Device._meta.db_table} d "  # noqa: S608 - our tables and columns
        f"JOIN {Asset._meta.db_table} a ON a.id = d.asset_id "
        "WHERE d.id = ANY(%s::uuid[]) ORDER BY d.id FOR UPDATE OF d"
    )
    return sql, device, asset


def _locked_devices(device_ids: set[str], *, skip_locked: bool) -> list[Device]:
    """`_devices_to_store()` of `device_ids`, locked (in id order); on PostgreSQL without
    compiling the query."""
    if connection.vendor != "postgresql":
        locking = _devices_to_store().select_for_update(of=("self",), skip_locked=skip_locked)
        return list(locking.filter(pk__in=device_ids))
    sql, device_fields, asset_fields = _locking_query()
    with connection.cursor() as cursor:
        cursor.execute(sql + (" SKIP LOCKED" if skip_locked else ""), [list(device_ids)])
        rows = cursor.fetchall()

    converters = [
        [(i, convert) for i, f in enumerate(fields) for convert in f.get_db_converters(connection)]
        for fields in (device_fields, asset_fields)
    ]  # JSONField's parsing of the text Django's psycopg setup returns for jsonb

    def values(which: int, raw: tuple[Any, ...]) -> list[Any]:
        converted = list(raw)
        for i, convert in converters[which]:
            converted[i] = convert(converted[i], None, connection)
        return converted

    split, alias = len(device_fields), connection.alias
    device_names, asset_names = [f.attname for f in device_fields], [f.attname for f in asset_fields]
    asset_field = Device._meta.get_field("asset")
    devices = []
    for row in rows:
        device = Device.from_db(alias, device_names, values(0, row[:split]))
        asset_field.set_cached_value(device, Asset.from_db(alias, asset_names, values(1, row[split:])))
        devices.append(device)
    return devices


def _lock_devices(device_ids: set[str], *, wait: bool) -> tuple[list[Device], set[str]]:
    """Lock the batch's devices (in id order, so two workers cannot deadlock); returns them
    and the ids of those another worker holds.

    Folding a counter reads a device's neighbouring readings, which a concurrent batch must
    not change, so a device's heartbeats are stored under its row lock. Without `wait`, SKIP
    LOCKED: a device that another batch holds is left out instead of waited for. (A device id
    with no device row is neither: its heartbeats are dropped, as they always were.)
    """
    devices = _locked_devices(device_ids, skip_locked=not wait)
    missing = device_ids - {str(device.pk) for device in devices}
    busy = (
        {str(pk) for pk in Device.objects.filter(pk__in=missing).values_list("pk", flat=True)}
        if missing
        else set()
    )
    return devices, busy


def _store(rows: list[InboxRow], result: BatchResult, locked: list[Device] | None = None) -> None:
    """Store the heartbeats of `rows` and fold them into usage, rollups, state and alarms;
    `locked` are their devices, already locked by `_lock_devices` (else locked here)."""
    by_device: dict[str, list[tuple[dict[str, Any], datetime]]] = defaultdict(list)
    for row in rows:
        received_at = row.received_at  # when the ingest view accepted it, not when the worker ran
        by_device[row.device_id].extend((item, received_at) for item in row.items)
    if locked is None:
        locked = _locked_devices(set(by_device), skip_locked=False)
    devices = [device for device in locked if str(device.pk) in by_device]
    counters, rules = model_rules.read({d.asset.model_id for d in devices})
    existing = _already_stored(devices, by_device)
    new_rows: list[tuple[Any, ...]] = []  # HEARTBEAT_COLUMNS
    usage: dict[tuple[str, str, str, datetime], Decimal] = defaultdict(Decimal)
    rollups: dict[telemetry.Key, list[float]] = {}
    changes = StateChanges()
    moments: dict[str, datetime] = {}  # ts text -> datetime: a batch repeats timestamps a lot
    # Active alarm keys of every asset in the batch, in one query (not one per device).
    for asset_id, key in (
        Alarm.objects.filter(asset_id__in={d.asset_id for d in devices}, state__in=ACTIVE_ALARM_STATES)
        .order_by()
        .values_list("asset_id", "key")
    ):
        changes.active_alarms.setdefault(asset_id, set()).add(key)
    for device in devices:
        device_key = str(device.pk)
        customer_key, asset_key = str(device.customer_id), str(device.asset_id)
        fresh: dict[int, tuple[dict[str, Any], datetime]] = {}
        for item, received_at in by_device[device_key]:
            seq = item["seq"]
            if seq in fresh or (device_key, seq) in existing:
                result.duplicates += 1
                continue
            fresh[seq] = (item, received_at)
        if not fresh:
            continue
        parsed = []
        received = []
        for seq in sorted(fresh):
            item, received_at = fresh[seq]
            text = item["ts"]
            moment = moments.get(text)
            if moment is None:
                moment = moments[text] = _ts(text)
            parsed.append((item, moment))
            received.append(received_at)
        increments = _fold_device(device, parsed, counters.get(device.asset.model_id, ()), usage)
        for (item, ts), received_at in zip(parsed, received, strict=True):
            telemetry.accumulate(
                rollups, customer_id=customer_key, asset_id=asset_key, ts=ts, metrics=item["metrics"]
            )
            new_rows.append(
                (
                    device.customer_id, device.asset_id, device.pk, item["seq"], ts, item["status"],
                    item["fault_code"], item["metrics"], increments.get(item["seq"], {}), received_at,
                )
            )  # fmt: skip
        _update_device_and_asset(device, parsed, rules.get(device.asset.model_id, []), changes, result)
    changes.write()
    _insert_heartbeats(new_rows)
    result.stored += len(new_rows)
    _add_usage(usage)
    telemetry.write(rollups)


def _already_stored(
    devices: list[Device], by_device: dict[str, list[tuple[dict[str, Any], datetime]]]
) -> set[tuple[str, int]]:
    """(device, seq) pairs of the batch that are stored already.

    Only a seq at or below the device's `last_seq` can be: every heartbeat is stored through
    `_store` under its device's lock, which raises `last_seq` to the newest stored seq. (The
    unique (device, seq) constraint stays the backstop.) In-order traffic costs no query.
    """
    candidates: list[tuple[str, int]] = []
    for device in devices:
        if device.last_seq is None:
            continue
        key = str(device.pk)
        candidates += [(key, item["seq"]) for item, _ in by_device[key] if item["seq"] <= device.last_seq]
    if not candidates:
        return set()
    if connection.vendor == "postgresql":
        with binding_cursor() as cursor:
            cursor.execute(
                f"SELECT DISTINCT h.device_id, h.seq FROM {Heartbeat._meta.db_table} h "  # noqa: S608
                "JOIN unnest(%b::uuid[], %b::bigint[]) AS t(d, s) ON h.device_id = t.d AND h.seq = t.s",
                [[d for d, _ in candidates], [s for _, s in candidates]],
            )
            return {(str(device_id), seq) for device_id, seq in cursor.fetchall()}
    return {
        (str(device_id), seq)
        for device_id, seq in Heartbeat.objects.filter(
            device_id__in={d for d, _ in candidates}, seq__in={s for _, s in candidates}
        ).values_list("device_id", "seq")
    }


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
    dumps = orjson.dumps  # JSON text for the jsonb columns (PostgreSQL parses it the same)
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(f"COPY {Heartbeat._meta.db_table} ({', '.join(HEARTBEAT_COLUMNS)}) FROM STDIN") as copy:
            for *values, metrics, increments, received_at in rows:
                copy.write_row((*values, dumps(metrics).decode(), dumps(increments).decode(), received_at))


_json_loads = orjson.loads  # the inbox holds what json.dumps wrote: plain JSON


def _ts(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)  # what the ingest view writes: UTC, ISO 8601
    except ValueError:
        moment = parse_datetime(value)
        assert moment is not None  # the ingest view wrote it
        return moment


class ModelRules:
    """What storing needs of each asset model: its counter metrics' codes and its active
    alarm rules, kept per process for up to TTL seconds.

    Read per batch they were two queries of every batch's ~20 round trips, for data an
    operator changes now and then. Saving or deleting a metric definition or a rule clears
    this process's copy at once (signals); another process sees the change within TTL
    seconds (a queryset update or bulk_create, which send no signal, too). The rules are
    shared by the batches of the process: read, never changed.
    """

    TTL = 2.0

    def __init__(self) -> None:
        self._counters: dict[Any, tuple[str, ...]] = {}
        self._rules: dict[Any, list[AlarmRule]] = {}
        self._read_at: dict[Any, float] = {}

    def read(self, model_ids: set[Any]) -> tuple[dict[Any, tuple[str, ...]], dict[Any, list[AlarmRule]]]:
        """(counter codes by model, active rules by model) for `model_ids`."""
        now = time.monotonic()
        stale = {m for m in model_ids if now - self._read_at.get(m, -math.inf) > self.TTL}
        if stale:
            from fleet.models import MetricDefinition

            counters: dict[Any, list[str]] = {m: [] for m in stale}
            rules: dict[Any, list[AlarmRule]] = {m: [] for m in stale}
            for model_id, code in (
                MetricDefinition.objects.filter(asset_model_id__in=stale, kind=MetricKind.COUNTER)
                .order_by()  # the default ordering joins the asset model
                .values_list("asset_model_id", "code")
            ):
                counters[model_id].append(code)
            for rule in AlarmRule.objects.filter(asset_model_id__in=stale, is_active=True).order_by("pk"):
                rules[rule.asset_model_id].append(rule)
            for model_id in stale:
                self._counters[model_id] = tuple(sorted(counters[model_id]))
                self._rules[model_id] = rules[model_id]
                self._read_at[model_id] = now
        return (
            {m: self._counters[m] for m in model_ids if self._counters[m]},
            {m: self._rules[m] for m in model_ids if self._rules[m]},
        )

    def clear(self, **_: Any) -> None:
        self._counters, self._rules, self._read_at = {}, {}, {}


model_rules = ModelRules()


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
    if in_order:
        # The common case: everything new comes after what is stored. `fold` over fresh
        # readings, without building a Reading per value.
        customer_key, asset_key = str(device.customer_id), str(device.asset_id)
        hours: dict[datetime, datetime] = {}
        for code in counter_codes:
            state = device.counter_state.get(code)
            previous = as_decimal(state[1]) if state else None
            for item, ts in parsed:
                value = item["metrics"].get(code)
                if value is None:
                    continue
                current = as_decimal(value)
                new = increment(previous, current)
                increments[item["seq"]][code] = str(new)
                if new:
                    hour = hours.get(ts)
                    if hour is None:
                        hour = hours[ts] = hour_of(ts)
                    usage[(customer_key, asset_key, code, hour)] += new
                previous = current
        return increments
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
        if connection.vendor != "postgresql":
            if self.devices:
                Device.objects.bulk_update(self.devices, ["last_seq", "last_seen_at", "counter_state"])
            if self.assets:
                Asset.objects.bulk_update(self.assets, [column for column, _type in ASSET_STATE])
        else:
            # One UPDATE … FROM unnest(arrays) per table: Django's bulk_update builds a CASE
            # per column and row, which for a few hundred rows costs more than the batch.
            if self.devices:
                _update_from_arrays(Device, DEVICE_STATE, self.devices)
            if self.assets:
                _update_from_arrays(Asset, ASSET_STATE, self.assets)
        AssetStatusChange.objects.bulk_create(self.status_changes)


DEVICE_STATE = (("last_seq", "bigint"), ("last_seen_at", "timestamptz"), ("counter_state", "jsonb"))
ASSET_STATE = (
    ("last_seen_at", "timestamptz"), ("last_values", "jsonb"), ("last_fault_code", "text"),
    ("status", "text"), ("status_changed_at", "timestamptz"), ("rule_state", "jsonb"),
)  # fmt: skip


def _update_from_arrays(
    model: type[Device] | type[Asset], columns: tuple[tuple[str, str], ...], rows: list[Any]
) -> None:
    """UPDATE the given columns of `rows` (model instances) in one statement (PostgreSQL).

    Values go as text arrays, cast in SQL: JSON as Django's JSONField writes it (json.dumps).
    """

    def text(value: Any, kind: str) -> str | None:
        if value is None:
            return None
        if kind == "jsonb":
            return json.dumps(value)
        if kind == "timestamptz":
            return str(value.isoformat())
        return str(value)

    table = model._meta.db_table
    names = ", ".join(f"{column} = v.{column}" for column, _kind in columns)
    arrays = ", ".join("%b::text[]" for _ in range(len(columns) + 1))
    casts = ", ".join(f"{column}::{kind} AS {column}" for column, kind in columns)
    aliases = ", ".join(column for column, _kind in columns)
    params: list[list[str | None]] = [[str(row.pk) for row in rows]]
    params += [[text(getattr(row, column), kind) for row in rows] for column, kind in columns]
    with binding_cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS t SET {names} FROM ("  # noqa: S608 - our table and column names
            f"SELECT id::uuid AS id, {casts} FROM unnest({arrays}) AS u(id, {aliases})"
            ") AS v WHERE t.id = v.id",
            params,
        )


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
    conflict = (
        "ON CONFLICT (asset_id, metric, hour) DO UPDATE SET "
        f"quantity = {table}.quantity + excluded.quantity, updated_at = excluded.updated_at"
    )
    if connection.vendor == "postgresql":
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
        return
    with connection.cursor() as cursor:
        ops = connection.ops
        uuid_field = Asset._meta.pk
        assert uuid_field is not None
        cursor.executemany(
            f"INSERT INTO {table} (customer_id, asset_id, metric, hour, quantity, updated_at) "  # noqa: S608
            f"VALUES (%s, %s, %s, %s, %s, %s) {conflict}",
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


class LivePublisher:
    """Live messages of committed batches, coalesced under load.

    A batch hands over the assets it changed. When nothing is waiting and publishing is not
    pausing, a small batch's messages go out at once from the batch's own thread (at light
    load the shortest way to the browsers: no hop to another thread, which under load would
    have to win the interpreter lock from the storing thread for every Redis round trip).
    Otherwise they go to a thread of their own, which sends `events.asset_status_changed`
    for everything handed over since its last round: each asset once, with its state as
    committed by then (the function reads it), so a message per asset per batch at most.

    Rounds, here or in the thread, never overlap (so a later round never sends older state
    than an earlier one). Publishing may take INGEST_LIVE_PUBLISH_SHARE of the time, counted
    in CPU with a budget (a token bucket): it earns that share of each second passed, up to
    BURST seconds of CPU, and each round spends what it took. A round that overdraws it is
    followed by a pause until the budget is back at zero, during which everything goes to the
    thread: under overload (a backlog of thousands of devices) the browsers get fewer,
    fresher messages instead of the storing falling behind. A steady load within the share
    never pauses; a pause after every large round made publishing bursty (a pause, then a
    larger round, then a longer pause), which the sockets felt as seconds of lag.
    """

    BURST = 0.2  # seconds of CPU the budget can hold
    INLINE_MAX = 50  # assets a batch publishes itself when nothing waits

    def __init__(self) -> None:
        self._pending: dict[str, None] = {}  # insertion-ordered set of asset ids
        self._wake = threading.Condition()
        self._round = threading.Lock()  # held by whoever runs a round
        self._idle = threading.Event()  # set while no round is pending or running
        self._idle.set()
        self._pause_until = 0.0
        self._budget = self.BURST
        self._earned_at = time.monotonic()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def submit(self, asset_ids: list[str]) -> None:
        if not asset_ids:
            return
        if (
            len(asset_ids) <= self.INLINE_MAX
            and not self._pending
            and time.monotonic() >= self._pause_until
            and self._round.acquire(blocking=False)
        ):
            try:
                self._publish(asset_ids)
            finally:
                self._round.release()
            return
        with self._wake:
            self._pending.update(dict.fromkeys(asset_ids))
            self._idle.clear()
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                # First use in this process (a Celery pool child forks without the thread).
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="fleet-live-publisher", daemon=True)
                self._thread.start()
            self._wake.notify()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every submitted round has run (tests, before they flush the database)."""
        return self._idle.wait(timeout)

    def _publish(self, asset_ids: list[str]) -> None:
        """One round (the caller holds `_round`); then the pause it earned, if any."""
        from django.db import connections

        started = time.thread_time()  # CPU, not waiting: a new connection's set-up is not cost
        for attempt in (1, 2):
            try:
                events.asset_status_changed(asset_ids=asset_ids)
            except DatabaseError:
                # A round that met a broken connection (a database restart, a pool closed
                # under it) tries once more on a fresh one.
                if attempt == 2:
                    log.exception("live: publishing %d assets failed", len(asset_ids))
                connections["default"].close()
                continue
            except Exception:
                log.exception("live: publishing %d assets failed", len(asset_ids))
            break
        self._spend(time.thread_time() - started, time.monotonic())

    def _spend(self, cpu: float, now: float) -> None:
        """Take a round's CPU from the budget; overdrawn, pause until it is earned back."""
        share = min(1.0, max(0.01, settings.INGEST_LIVE_PUBLISH_SHARE))
        self._budget = min(self.BURST, self._budget + (now - self._earned_at) * share) - cpu
        self._earned_at = now
        if self._budget < 0:
            self._pause_until = now - self._budget / share

    def _run(self) -> None:
        from django.db import connections

        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
            time.sleep(max(0.0, self._pause_until - time.monotonic()))
            with self._round:
                with self._wake:
                    asset_ids, self._pending = list(self._pending), {}
                self._publish(asset_ids)
            connections["default"].close()  # this thread's connection, back to the pool
            with self._wake:
                if not self._pending:
                    self._idle.set()


live_publisher = LivePublisher()


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
