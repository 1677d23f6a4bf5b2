"""Storing a claimed batch: its devices locked, new heartbeats kept once per (device, seq) and
written with COPY, folded into usage (counters.py), rollups, state and alarms (state.py) — inside the
batch's transaction (worker.py). docs/ingest.md, "The worker".
"""

from __future__ import annotations

import functools
import struct
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson
from django.db import connection
from django.db.models.base import ModelState
from django.utils.dateparse import parse_datetime

from fleet import telemetry
from fleet.ingest.counters import add_usage, fold_device
from fleet.ingest.state import StateChanges, model_rules, update_device_and_asset
from fleet.models import ACTIVE_ALARM_STATES, Alarm, Asset, Device, Heartbeat
from fleet.sql import binding_cursor

if TYPE_CHECKING:
    from fleet.ingest.worker import BatchResult, InboxRow

# What storing reads of a device and its asset: a batch loads one of each per device, so the
# columns it never reads (and their parsing) are left out. `asset.name` is for alarm texts.
DEVICE_FIELDS = ("id", "customer", "asset", "is_active", "last_seq", "last_seen_at", "counter_state")


ASSET_FIELDS = (
    "id", "customer", "model", "name", "decommissioned_at", "status", "status_changed_at", "last_seen_at",
    "last_values", "last_fault_code", "rule_state",
)  # fmt: skip


@functools.cache
def _locking_query() -> tuple[str, str, list[Any], list[Any]]:
    """The locking queries of devices with their assets, as SQL made once: (every one of a
    set of ids, waiting, in id order; the first `limit` of a list of ids that no other
    transaction holds, in the list's order, and the ids of the list without a device row),
    device fields, asset fields.

    The ORM compiled the same query for every batch (~2 ms of a one-row batch's CPU); the
    columns are the models' own, in their order, so `Model.from_db` takes the rows as the
    ORM's `select_related("asset").only(...)` would (tests/fleet/test_pipeline.py compares).
    """
    device = [f for f in Device._meta.concrete_fields if f.name in DEVICE_FIELDS]
    asset = [f for f in Asset._meta.concrete_fields if f.name in ASSET_FIELDS]
    quote = connection.ops.quote_name
    selected = [f"d.{quote(str(f.column))}" for f in device] + [f"a.{quote(str(f.column))}" for f in asset]
    tables = f"{Device._meta.db_table} d JOIN {Asset._meta.db_table} a ON a.id = d.asset_id"
    every = (
        f"SELECT {', '.join(selected)} FROM {tables} "  # noqa: S608 - our tables and columns
        "WHERE d.id = ANY(%s::uuid[]) ORDER BY d.id FOR UPDATE OF d"
    )
    # Rows (list position, the columns, NULL) of the devices locked, then (position, NULLs,
    # id) of the ids without a device: one round trip. FOR UPDATE is not allowed in a UNION,
    # so the locking SELECT is a CTE (its columns renamed: devices and assets share names).
    names = [f"c{i}" for i in range(len(selected))]
    renamed = ", ".join(f"{column} AS {name}" for column, name in zip(selected, names, strict=True))
    free = (
        "WITH c AS MATERIALIZED (SELECT * FROM unnest(%s::uuid[]) WITH ORDINALITY AS c(id, n)), "  # noqa: S608
        f"locked AS (SELECT c.n, {renamed} "
        f"FROM c JOIN {tables} ON d.id = c.id ORDER BY c.n LIMIT %s FOR UPDATE OF d SKIP LOCKED) "
        f"SELECT n, {', '.join(names)}, NULL::uuid FROM locked UNION ALL "
        f"SELECT c.n, {', '.join('NULL' for _ in names)}, c.id FROM c "
        f"WHERE NOT EXISTS (SELECT FROM {Device._meta.db_table} e WHERE e.id = c.id) ORDER BY 1"
    )
    return every, free, device, asset


def locked_devices(device_ids: set[str], *, skip_locked: bool) -> list[Device]:
    """The devices of `device_ids` with their assets (DEVICE_FIELDS, ASSET_FIELDS), locked
    in id order (`skip_locked`: those another transaction holds are left out)."""
    every, _, _, _ = _locking_query()
    with connection.cursor() as cursor:
        cursor.execute(every + (" SKIP LOCKED" if skip_locked else ""), [list(device_ids)])
        return _devices(cursor.fetchall())


def free_devices(candidates: list[str], limit: int) -> tuple[list[Device], set[str]]:
    """The first `limit` devices of `candidates` (in that order) that no other transaction
    holds, with their assets, locked; and the candidates with no device row (deleted since
    their heartbeats were accepted: their inbox rows are claimed without a lock, and their
    heartbeats dropped) up to the last device locked, or all when fewer than `limit` were
    free: the candidates this look tried. One statement. SKIP LOCKED: never waits, so two
    drains take disjoint devices side by side (docs/ingest.md, "Parallel drains")."""
    _, free, _, _ = _locking_query()
    with connection.cursor() as cursor:
        cursor.execute(free, [candidates, limit])
        rows = cursor.fetchall()
    found = [row[1:-1] for row in rows if row[-1] is None]
    last = max((row[0] for row in rows if row[-1] is None), default=None) if len(found) == limit else None
    missing = {str(row[-1]) for row in rows if row[-1] is not None and (last is None or row[0] < last)}
    return _devices(found), missing


def _devices(rows: list[tuple[Any, ...]]) -> list[Device]:
    """The locking query's rows as devices with their assets cached, as `Model.from_db` would
    make them for `.only(DEVICE_FIELDS)` with `select_related("asset")`, for less: the
    attributes are set directly, not through `__init__` (its loop over every field and its
    init signals were about half of loading a batch's devices; neither model has an init
    signal receiver). tests/fleet/test_pipeline.py compares them with the ORM's."""
    _, _, device_fields, asset_fields = _locking_query()
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
    devices = []
    for row in rows:
        device = _loaded(Device, alias, device_names, values(0, row[:split]))
        device._state.fields_cache["asset"] = _loaded(Asset, alias, asset_names, values(1, row[split:]))
        devices.append(device)
    return devices


def _loaded(model: type[Device] | type[Asset], alias: str, names: list[str], values: list[Any]) -> Any:
    """A model instance as loaded from the database with only `names` set (the others
    deferred, as `.only()` leaves them)."""
    instance = model.__new__(model)
    instance.__dict__.update(zip(names, values, strict=True))
    state = instance._state = ModelState()
    state.adding, state.db = False, alias
    return instance


def store(rows: list[InboxRow], result: BatchResult, locked: list[Device] | None = None) -> None:
    """Store the heartbeats of `rows` and fold them into usage, rollups, state and alarms;
    `locked` are their devices, already locked by `free_devices` (else locked here).

    One pass per device over its new heartbeats builds their COPY rows and the minute
    rollups (per-heartbeat Python is most of a batch's cost: docs/performance.md, S1b)."""
    by_device: dict[str, list[tuple[dict[str, Any], bytes]]] = defaultdict(list)
    for row in rows:
        # When the ingest door accepted it, not when the worker ran; as a COPY field.
        received = _timestamp_field(row.received_at)
        by_device[row.device_id].extend([(item, received) for item in row.items])
    if locked is None:
        locked = locked_devices(set(by_device), skip_locked=False)
    devices = [device for device in locked if str(device.pk) in by_device]
    counters, rules = model_rules.read({d.asset.model_id for d in devices})
    existing = _already_stored(devices, by_device)
    lines: list[bytes] = []  # the new heartbeats as binary COPY rows, HEARTBEAT_COLUMNS
    usage: dict[tuple[str, str, str, datetime], Decimal] = defaultdict(Decimal)
    rollups: dict[telemetry.Key, list[float]] = {}
    changes = StateChanges()
    moments: dict[str, Moment] = {}  # ts text -> Moment: a batch repeats timestamps a lot
    # Active alarm keys of every asset in the batch, in one query (not one per device).
    for asset_id, key in (
        Alarm.objects.filter(asset_id__in={d.asset_id for d in devices}, state__in=ACTIVE_ALARM_STATES)
        .order_by()
        .values_list("asset_id", "key")
    ):
        changes.active_alarms.setdefault(asset_id, set()).add(key)
    for device in devices:
        device_key = str(device.pk)
        fresh: dict[int, tuple[dict[str, Any], bytes]] = {}
        for item, received in by_device[device_key]:
            seq = item["seq"]
            if seq in fresh or (existing and (device_key, seq) in existing):
                result.duplicates += 1
                continue
            fresh[seq] = (item, received)
        if not fresh:
            continue
        parsed: list[tuple[dict[str, Any], datetime]] = []
        extra: list[tuple[Moment, bytes]] = []
        hours: list[datetime] = []
        for seq in sorted(fresh):
            item, received = fresh[seq]
            text = item["ts"]
            moment = moments.get(text)
            if moment is None:
                moment = moments[text] = _moment(text)
            parsed.append((item, moment[0]))
            extra.append((moment, received))
            hours.append(moment[3])
        folding = fold_device(device, parsed, counters.get(device.asset.model_id, ()), usage, hours)
        _rows_and_rollups(device, parsed, extra, folding.increments, lines, rollups)
        update_device_and_asset(
            device, parsed, rules.get(device.asset.model_id, []), changes, result, folding.baselines
        )
    changes.write()
    _insert_heartbeats(lines)
    result.stored += len(lines)
    add_usage(usage)
    telemetry.write(rollups)


# A heartbeat's time: (the moment, its COPY field, its minute and its hour).
Moment = tuple[datetime, bytes, datetime, datetime]


def _moment(text: str) -> Moment:
    moment = _ts(text)
    minute = moment.replace(second=0, microsecond=0)
    return moment, _timestamp_field(moment), minute, minute.replace(minute=0)


def _rows_and_rollups(
    device: Device,
    parsed: list[tuple[dict[str, Any], datetime]],
    extra: list[tuple[Moment, bytes]],
    increments: dict[int, dict[str, str]],
    lines: list[bytes],
    rollups: dict[telemetry.Key, list[float]],
) -> None:
    """A device's new heartbeats (in seq order) as binary COPY rows, and their values folded
    into the batch's minute rollups [count, sum, min, max] (`telemetry.write` derives the
    hour and day buckets). A rollup's entry is added to in the heartbeats' order; it is
    looked up once per run of heartbeats in its minute, not once per value."""
    customer_key, asset_key = str(device.customer_id), str(device.asset_id)
    # The field count and the three ids: the same for every row of the device.
    prefix = b"".join(
        [FIELDS, *(UUID_SIZE + UUID(str(key)).bytes for key in (customer_key, asset_key, device.pk))]
    )
    dumps, seq_field, jsonb_size, statuses = orjson.dumps, SEQ_FIELD.pack, JSONB_SIZE.pack, STATUS_FIELDS
    none: dict[str, str] = {}
    minute: datetime | None = None
    entries: dict[str, list[float]] = {}
    for (item, _at), ((_, ts_field, item_minute, _hour), received) in zip(parsed, extra, strict=True):
        seq, metrics, fault_code = item["seq"], item["metrics"], item["fault_code"]
        if item_minute != minute:
            minute, entries = item_minute, {}
        for code, value in metrics.items():
            number = float(value)
            entry = entries.get(code)
            if entry is None:
                key = (customer_key, asset_key, code, item_minute)
                entry = rollups.get(key)
                if entry is None:
                    rollups[key] = entries[code] = [1, number, number, number]
                    continue
                entries[code] = entry
            entry[0] += 1
            entry[1] += number
            if number < entry[2]:
                entry[2] = number
            elif number > entry[3]:
                entry[3] = number
        metrics_json, increments_json = dumps(metrics), dumps(increments.get(seq, none))
        status = item["status"]
        row = b"".join((
            prefix, seq_field(8, seq), ts_field, statuses.get(status) or _text_field(status),
            EMPTY if fault_code == "" else _text_field(fault_code),
            jsonb_size(len(metrics_json) + 1, 1), metrics_json,
            jsonb_size(len(increments_json) + 1, 1), increments_json,
            received,
        ))  # fmt: skip
        lines.append(row)


def _already_stored(
    devices: list[Device], by_device: dict[str, list[tuple[dict[str, Any], bytes]]]
) -> set[tuple[str, int]]:
    """(device, seq) pairs of the batch that are stored already.

    Only a seq at or below the device's `last_seq` can be: every heartbeat is stored through
    `store` under its device's lock, which raises `last_seq` to the newest stored seq. In-order
    traffic costs no query. This look-up is what keeps (device, seq) unique: the table is
    partitioned by `ts`, so the database's constraint is (device, seq, ts), and a repeat with
    another `ts` is found here, in every partition (docs/ingest.md, "Partitioned telemetry").

    A device's candidates are asked for as runs of seqs (`seq_runs`), one index range scan per
    run and partition instead of one probe per seq and partition, by a statement prepared on
    the connection: planning it over every daily partition took longer than running it.
    """
    devices_, lows, highs = [], [], []
    wanted: set[tuple[str, int]] = set()
    for device in devices:
        if device.last_seq is None:
            continue
        key = str(device.pk)
        seqs = {item["seq"] for item, _ in by_device[key] if item["seq"] <= device.last_seq}
        wanted.update((key, seq) for seq in seqs)
        for low, high in seq_runs(seqs):
            devices_.append(key)
            lows.append(low)
            highs.append(high)
    if not wanted:
        return set()
    with binding_cursor() as cursor:
        cursor.execute(
            f"SELECT h.device_id::text, h.seq FROM {Heartbeat._meta.db_table} h "  # noqa: S608
            "JOIN unnest(%b::uuid[], %b::bigint[], %b::bigint[]) AS r(d, low, high) "
            "ON h.device_id = r.d AND h.seq BETWEEN r.low AND r.high",
            [devices_, lows, highs],
            prepare=True,
        )
        return {pair for pair in cursor.fetchall() if pair in wanted}


RUN_GAP = 64  # seqs further apart than this are asked for as separate runs


def seq_runs(seqs: set[int]) -> list[tuple[int, int]]:
    """`seqs` as [low, high] runs, a gap of more than RUN_GAP starting a new one: a run costs
    one range scan per partition, and it reads at most RUN_GAP stored seqs per wanted one."""
    runs: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if runs and seq - runs[-1][1] <= RUN_GAP:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


HEARTBEAT_COLUMNS = (
    "customer_id", "asset_id", "device_id", "seq", "ts", "status", "fault_code", "metrics", "increments",
    "received_at",
)  # fmt: skip


def _insert_heartbeats(rows: list[bytes]) -> None:
    """Insert new heartbeats, given as binary COPY rows in HEARTBEAT_COLUMNS order
    (`_rows_and_rollups`; received_at is when the ingest door accepted them).

    With COPY: several times faster than a bulk INSERT of parameters, and this is the hot
    path. The rows are written by the batch in one pass and sent as one block, not row by
    row through psycopg's per-value adapters; in PostgreSQL's binary format, which spares
    the server parsing the ids, numbers and times from text (~1.7 of its ~7.5 µs a row,
    docs/performance.md, S1b). Duplicates were dropped under the device locks, so nothing
    conflicts.
    """
    if not rows:
        return
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        columns = ", ".join(HEARTBEAT_COLUMNS)
        with raw.copy(f"COPY {Heartbeat._meta.db_table} ({columns}) FROM STDIN (FORMAT binary)") as copy:
            copy.write(b"".join([BINARY_HEADER, *rows, BINARY_TRAILER]))


# PostgreSQL's binary COPY format: a header, then per row the field count and each field as
# its length (-1: NULL) and its bytes in the type's binary form, then a trailer.
BINARY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, no flags, no header extension
BINARY_TRAILER = b"\xff\xff"
FIELDS = struct.pack(">h", len(HEARTBEAT_COLUMNS))
UUID_SIZE = struct.pack(">i", 16)
SEQ_FIELD = struct.Struct(">iq")  # bigint: its size, the number
JSONB_SIZE = struct.Struct(">ib")  # jsonb: its size, the format version (1) before the JSON text
EMPTY = struct.pack(">i", 0)  # an empty text (not NULL)
NULL = struct.pack(">i", -1)
# timestamptz: microseconds since 2000-01-01 UTC
POSTGRES_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def _timestamp_field(moment: datetime) -> bytes:
    return SEQ_FIELD.pack(8, (moment - POSTGRES_EPOCH) // MICROSECOND)


def _text_field(value: str | None) -> bytes:
    if value is None:
        return NULL
    data = value.encode()
    return struct.pack(">i", len(data)) + data


STATUS_FIELDS = {status: _text_field(status) for status in ("ok", "warning", "fault")}


def _ts(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)  # what the ingest view writes: UTC, ISO 8601
    except ValueError:
        moment = parse_datetime(value)
        assert moment is not None  # the ingest view wrote it
        return moment
