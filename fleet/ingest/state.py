"""What a batch folds in per device besides its counters (counters.py): the device's and asset's
state, status changes and alarm rules (fleet.alarms) — and the asset models' rules kept per
process. docs/ingest.md, "The worker", and docs/billing.md for how counters become usage.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import orjson
from django.utils import timezone

from fleet import alarms
from fleet.ingest.counters import Counter
from fleet.models import (
    AlarmRule,
    Asset,
    AssetStatus,
    AssetStatusChange,
    AssetThreshold,
    Device,
    MetricDefinition,
    MetricKind,
)
from fleet.sql import binding_cursor

if TYPE_CHECKING:
    from fleet.ingest.worker import BatchResult


class ModelRules:
    """What storing needs of each asset model: its counter metrics (code, bound) and its
    active alarm rules, kept per process for up to TTL seconds.

    Read per batch they were two queries of every batch's ~20 round trips, for data an
    operator changes now and then. Saving or deleting a metric definition or a rule clears
    this process's copy at once (signals); another process sees the change within TTL
    seconds (a queryset update or bulk_create, which send no signal, too). The rules are
    shared by the batches of the process: read, never changed.

    The customers' own thresholds of those rules (`AssetThreshold`, fleet/thresholds.py) are
    kept alongside, by model and asset, read and cleared with the rules: one query more per
    refresh (at most one per TTL), none per batch or heartbeat.
    """

    TTL = 2.0

    def __init__(self) -> None:
        self._counters: dict[Any, tuple[Counter, ...]] = {}
        self._rules: dict[Any, list[AlarmRule]] = {}
        # model -> asset -> rule -> the customer's threshold
        self._thresholds: dict[Any, dict[Any, dict[Any, Decimal]]] = {}
        self._read_at: dict[Any, float] = {}

    def read(self, model_ids: set[Any]) -> tuple[dict[Any, tuple[Counter, ...]], dict[Any, list[AlarmRule]]]:
        """(counters by model, active rules by model) for `model_ids`."""
        now = time.monotonic()
        stale = {m for m in model_ids if now - self._read_at.get(m, -math.inf) > self.TTL}
        if stale:
            counters: dict[Any, list[Counter]] = {m: [] for m in stale}
            rules: dict[Any, list[AlarmRule]] = {m: [] for m in stale}
            for model_id, code, bound in (
                MetricDefinition.objects.filter(asset_model_id__in=stale, kind=MetricKind.COUNTER)
                .order_by()  # the default ordering joins the asset model
                .values_list("asset_model_id", "code", "max_rate_per_hour")
            ):
                counters[model_id].append((code, bound))
            for rule in AlarmRule.objects.filter(asset_model_id__in=stale, is_active=True).order_by("pk"):
                rules[rule.asset_model_id].append(rule)
            thresholds: dict[Any, dict[Any, dict[Any, Decimal]]] = {m: {} for m in stale}
            if any(rules[m] for m in stale):
                for model_id, asset_id, rule_id, threshold in (
                    AssetThreshold.objects.filter(rule__asset_model_id__in=stale, rule__is_active=True)
                    .order_by()
                    .values_list("rule__asset_model_id", "asset_id", "rule_id", "threshold")
                ):
                    thresholds[model_id].setdefault(asset_id, {})[rule_id] = threshold
            for model_id in stale:
                self._counters[model_id] = tuple(sorted(counters[model_id]))
                self._rules[model_id] = rules[model_id]
                self._thresholds[model_id] = thresholds[model_id]
                self._read_at[model_id] = now
        return (
            {m: self._counters[m] for m in model_ids if self._counters[m]},
            {m: self._rules[m] for m in model_ids if self._rules[m]},
        )

    def thresholds(self, model_id: Any, asset_id: Any) -> dict[Any, Decimal]:
        """The asset's own thresholds by rule id, as of this batch's `read` (read again if the
        copy was cleared since)."""
        if model_id not in self._thresholds:
            self.read({model_id})
        return self._thresholds[model_id].get(asset_id, NO_THRESHOLDS)

    def clear(self, **_: Any) -> None:
        self._counters, self._rules, self._thresholds, self._read_at = {}, {}, {}, {}


NO_THRESHOLDS: dict[Any, Decimal] = {}


model_rules = ModelRules()

STATUS_FROM_HEARTBEAT = {"ok": AssetStatus.ONLINE, "warning": AssetStatus.WARNING, "fault": AssetStatus.FAULT}


@dataclass
class StateChanges:
    """Device and asset rows a batch changes, written with one bulk UPDATE each at the end."""

    devices: list[Device] = field(default_factory=list)
    assets: list[Asset] = field(default_factory=list)
    status_changes: list[AssetStatusChange] = field(default_factory=list)
    active_alarms: dict[Any, set[str]] = field(default_factory=dict)

    def write(self) -> None:
        # One UPDATE … FROM jsonb_to_recordset(one JSON document) per table: Django's
        # bulk_update builds a CASE per column and row, which for a few hundred rows costs more
        # than the batch.
        if self.devices:
            _update_from_json(Device, DEVICE_STATE, self.devices)
        if self.assets:
            _update_from_json(Asset, ASSET_STATE, self.assets)
        AssetStatusChange.objects.bulk_create(self.status_changes)


DEVICE_STATE = (("last_seq", "bigint"), ("last_seen_at", "timestamptz"), ("counter_state", "jsonb"))


ASSET_STATE = (
    ("last_seen_at", "timestamptz"), ("last_values", "jsonb"), ("last_fault_code", "text"),
    ("status", "text"), ("status_changed_at", "timestamptz"), ("rule_state", "jsonb"),
)  # fmt: skip


def _update_from_json(
    model: type[Device] | type[Asset], columns: tuple[tuple[str, str], ...], rows: list[Any]
) -> None:
    """UPDATE the given columns of `rows` (model instances) in one statement.

    The values go as one JSON document written by orjson (in C: ids, times and the JSON
    columns as they are), which PostgreSQL reads into typed columns with
    `jsonb_to_recordset`. Before, they went as text arrays built value by value in Python
    (json.dumps per JSON value, isoformat per time, str per id): ~40 µs of the worker's CPU
    per device and asset row (docs/performance.md, 2026-12-08).
    """
    table = model._meta.db_table
    names = ", ".join(f"{column} = v.{column}" for column, _kind in columns)
    record = ", ".join(f"{column} {kind}" for column, kind in columns)
    attributes = [column for column, _kind in columns]
    document = _dumps([{"id": row.pk, **{name: getattr(row, name) for name in attributes}} for row in rows])
    with binding_cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} AS t SET {names} "  # noqa: S608 - our table and column names
            f"FROM jsonb_to_recordset(%s::jsonb) AS v(id uuid, {record}) WHERE t.id = v.id",
            [document.decode()],
        )


_dumps = orjson.dumps  # aware datetimes as ISO 8601 with their offset, UUIDs and str enums as text


def update_device_and_asset(
    device: Device,
    parsed: list[tuple[dict[str, Any], datetime]],
    rules: list[AlarmRule],
    changes: StateChanges,
    result: BatchResult,
    baselines: dict[str, list[Any]] | None = None,
) -> None:
    """`baselines`: the counters' new entries of `counter_state` (`counters.fold_device`): a counter's
    entry is the newest reading that counts, not merely the newest."""
    newest_item, newest_ts = parsed[-1]
    touched = False
    if device.last_seq is None or newest_item["seq"] > device.last_seq:
        device.last_seq = newest_item["seq"]
        device.last_seen_at = newest_ts
        touched = True
    # Each metric's newest reading (parsed is in seq order): walked from the newest, an item
    # whose metrics were all seen in newer ones is passed over whole.
    state = dict(device.counter_state)
    seen: set[str] = set()
    for item, _moment in reversed(parsed):
        metrics = item["metrics"]
        if metrics.keys() <= seen:
            continue
        for code, value in metrics.items():
            if code in seen:
                continue
            seen.add(code)
            if code in state and state[code][0] >= item["seq"]:
                continue
            state[code] = [item["seq"], value]
    if baselines:
        state.update(baselines)
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
    # The customer's own thresholds of this asset (a dict lookup in the process's copy).
    own = model_rules.thresholds(asset.model_id, asset.pk) if rules else NO_THRESHOLDS
    for item, ts in newer:
        # Without rules, a reading changes alarms only when its fault status differs from the
        # device-fault alarm's (evaluate_reading raises or clears it): the others are skipped.
        if rules or (item["status"] == "fault") != (alarms.DEVICE_FAULT in active):
            alarms.evaluate_reading(
                asset=asset, rules=rules, item=item, ts=ts, rule_state=rule_state, active=active,
                thresholds=own,
            )  # fmt: skip
    newest_item, newest_ts = max(newer, key=itemgetter(1))
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
