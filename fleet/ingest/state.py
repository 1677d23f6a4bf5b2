"""What a batch folds in per device: counters into hourly usage, the device's and asset's
state, status changes and alarm rules (fleet.alarms) — and the asset models' rules kept per
process. docs/ingest.md, "The worker", and docs/billing.md for how counters become usage.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from fleet import alarms
from fleet.models import (
    AlarmRule,
    Asset,
    AssetStatus,
    AssetStatusChange,
    Device,
    Heartbeat,
    MetricDefinition,
    MetricKind,
)
from fleet.sql import binding_cursor
from fleet.usage import Reading, as_decimal, fold, hour_of, increment

if TYPE_CHECKING:
    from fleet.ingest.worker import BatchResult


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


def fold_device(
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
        # One UPDATE … FROM unnest(arrays) per table: Django's bulk_update builds a CASE per
        # column and row, which for a few hundred rows costs more than the batch.
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
    """UPDATE the given columns of `rows` (model instances) in one statement.

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


def update_device_and_asset(
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
