"""Storing a claimed batch: its devices locked, new heartbeats kept once per (device, seq) and
written with COPY, folded into usage (counters.py), rollups, state and alarms (state.py) — inside the
batch's transaction (worker.py). docs/ingest.md, "The worker".
"""

from __future__ import annotations

import functools
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import orjson
from django.db import connection
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
    transaction holds, in the list's order), device fields, asset fields.

    The ORM compiled the same query for every batch (~2 ms of a one-row batch's CPU); the
    columns are the models' own, in their order, so `Model.from_db` takes the rows as the
    ORM's `select_related("asset").only(...)` would (tests/fleet/test_pipeline.py compares).
    """
    device = [f for f in Device._meta.concrete_fields if f.name in DEVICE_FIELDS]
    asset = [f for f in Asset._meta.concrete_fields if f.name in ASSET_FIELDS]
    quote = connection.ops.quote_name
    columns = ", ".join(
        [f"d.{quote(str(f.column))}" for f in device] + [f"a.{quote(str(f.column))}" for f in asset]
    )
    tables = f"{Device._meta.db_table} d JOIN {Asset._meta.db_table} a ON a.id = d.asset_id"
    every = (
        f"SELECT {columns} FROM {tables} "  # noqa: S608 - our tables and columns
        "WHERE d.id = ANY(%s::uuid[]) ORDER BY d.id FOR UPDATE OF d"
    )
    free = (
        f"SELECT {columns} FROM unnest(%s::uuid[]) WITH ORDINALITY AS c(id, n) "  # noqa: S608
        f"JOIN {tables} ON d.id = c.id ORDER BY c.n LIMIT %s FOR UPDATE OF d SKIP LOCKED"
    )
    return every, free, device, asset


def locked_devices(device_ids: set[str], *, skip_locked: bool) -> list[Device]:
    """The devices of `device_ids` with their assets (DEVICE_FIELDS, ASSET_FIELDS), locked
    in id order (`skip_locked`: those another transaction holds are left out)."""
    every, _, _, _ = _locking_query()
    return _load_devices(every + (" SKIP LOCKED" if skip_locked else ""), [list(device_ids)])


def free_devices(candidates: list[str], limit: int) -> list[Device]:
    """The first `limit` devices of `candidates` (in that order) that no other transaction
    holds, with their assets, locked. SKIP LOCKED: never waits, so two drains take disjoint
    devices side by side (docs/ingest.md, "Parallel drains")."""
    _, free, _, _ = _locking_query()
    return _load_devices(free, [candidates, limit])


def _load_devices(sql: str, params: list[Any]) -> list[Device]:
    _, _, device_fields, asset_fields = _locking_query()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
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


def missing_devices(device_ids: set[str]) -> set[str]:
    """The ids of `device_ids` with no device row (deleted since their heartbeats were
    accepted): their inbox rows are claimed without a lock, and their heartbeats dropped."""
    if not device_ids:
        return set()
    existing = {str(pk) for pk in Device.objects.filter(pk__in=device_ids).values_list("pk", flat=True)}
    return device_ids - existing


def store(rows: list[InboxRow], result: BatchResult, locked: list[Device] | None = None) -> None:
    """Store the heartbeats of `rows` and fold them into usage, rollups, state and alarms;
    `locked` are their devices, already locked by `free_devices` (else locked here)."""
    by_device: dict[str, list[tuple[dict[str, Any], datetime]]] = defaultdict(list)
    for row in rows:
        received_at = row.received_at  # when the ingest view accepted it, not when the worker ran
        by_device[row.device_id].extend((item, received_at) for item in row.items)
    if locked is None:
        locked = locked_devices(set(by_device), skip_locked=False)
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
        folding = fold_device(device, parsed, counters.get(device.asset.model_id, ()), usage)
        increments = folding.increments
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
        update_device_and_asset(
            device, parsed, rules.get(device.asset.model_id, []), changes, result, folding.baselines
        )
    changes.write()
    _insert_heartbeats(new_rows)
    result.stored += len(new_rows)
    add_usage(usage)
    telemetry.write(rollups)


def _already_stored(
    devices: list[Device], by_device: dict[str, list[tuple[dict[str, Any], datetime]]]
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


def _insert_heartbeats(rows: list[tuple[Any, ...]]) -> None:
    """Insert new heartbeats (tuples in HEARTBEAT_COLUMNS order; received_at is when the
    ingest view accepted them, not when the worker got to them).

    With COPY: several times faster than a bulk INSERT of parameters, and this is the hot
    path. Duplicates were dropped under the device locks, so nothing conflicts.
    """
    dumps = orjson.dumps  # JSON text for the jsonb columns (PostgreSQL parses it the same)
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        with raw.copy(f"COPY {Heartbeat._meta.db_table} ({', '.join(HEARTBEAT_COLUMNS)}) FROM STDIN") as copy:
            for *values, metrics, increments, received_at in rows:
                copy.write_row((*values, dumps(metrics).decode(), dumps(increments).decode(), received_at))


def _ts(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)  # what the ingest view writes: UTC, ISO 8601
    except ValueError:
        moment = parse_datetime(value)
        assert moment is not None  # the ingest view wrote it
        return moment
