"""Evaluating health rules over the stored rollups: `evaluate(asset_ids, now)` (docs/health.md).

Per batch of assets: one query for the assets, one for their models' rules, one per rollup
resolution the rules read (hour by default; never raw heartbeats), one for their active health
alarms, one for their maintenance windows, one for their previous health, one upsert of
`AssetHealth` (and a live `asset.health` after the commit for each score that changed); queries beyond that
only where an alarm is raised, moved or cleared. The numerics are scipy's (fleet/health/rules.py).

Idempotent: evaluating the same data twice raises nothing new (one active alarm per asset and
key, a database constraint), and safe to run concurrently for overlapping assets.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from fleet.alarms import alarm_clear_key, alarm_raise
from fleet.health import rules as core
from fleet.health.messages import anomaly_message, trend_message
from fleet.live import health_messages, publish_after_commit
from fleet.maintenance import windows_for_assets
from fleet.models import (
    ACTIVE_ALARM_STATES,
    Alarm,
    AlarmKind,
    Asset,
    AssetHealth,
    AssetStatus,
    AssetStatusChange,
    HealthRule,
    HealthRuleKind,
    MetricDefinition,
    Resolution,
    TelemetryRollup,
)

log = logging.getLogger(__name__)

KEY_PREFIX = "health:"
# A raised prediction clears only once no crossing is confidently due within this many
# horizons, and an anomaly once its z-score is below this share of the sensitivity: without
# the gap, a value at the edge would raise and clear on alternate rounds.
CLEAR_HORIZON_FACTOR = 1.5
CLEAR_SENSITIVITY_SHARE = 0.75
# expected_at is rewritten (with its message) when it moved by more than this share of the
# time left, and at least an hour: not on every round's jitter.
MOVE_SHARE = 0.1
TREND_RECOVERED = "trend recovered"
ANOMALY_GONE = "readings normal again"
RULE_GONE = "health rule no longer active"


STOPPED_STATUSES = (AssetStatus.FAULT, AssetStatus.OFFLINE)


def health_key(rule: HealthRule) -> str:
    return f"{KEY_PREFIX}{rule.pk}"


@dataclass
class Summary:
    """What one `evaluate` call did; counts of (asset, rule) pairs unless named otherwise."""

    assets: int = 0  # assets evaluated (with at least one active rule)
    rules: int = 0  # (asset, rule) pairs looked at
    no_data: int = 0  # pairs with too few rollups to say anything
    raised: int = 0
    moved: int = 0  # predictions whose expected time moved
    cleared: int = 0
    suppressed: int = 0  # would have raised, but the asset is in maintenance
    rollup_rows: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)  # raised per alarm kind

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def add(self, other: Summary) -> None:
        for name in ("assets", "rules", "no_data", "raised", "moved", "cleared", "suppressed", "rollup_rows"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for kind, count in other.by_kind.items():
            self.by_kind[kind] = self.by_kind.get(kind, 0) + count


@dataclass
class Series:
    hours: np.ndarray  # bucket middle relative to now, in hours (negative)
    means: np.ndarray
    spreads: np.ndarray
    maxima: np.ndarray | None = None
    minima: np.ndarray | None = None
    # Per bucket: did the machine run in it (its running-time counter advanced)? None when the
    # asset reports no such counter for these buckets.
    running: np.ndarray | None = None

    def take(self, keep: np.ndarray) -> Series:
        def part(values: np.ndarray | None) -> np.ndarray | None:
            return None if values is None else values[keep]

        return Series(
            self.hours[keep], self.means[keep], self.spreads[keep],
            part(self.maxima), part(self.minima), part(self.running),
        )  # fmt: skip


# The counter of running time a rule reads to tell running buckets from idle ones (a rule's
# params may name another: "running_metric"), and how much it must advance in an hour bucket.
RUNNING_METRIC = "run_hours"
RUNNING_MIN_SHARE = 0.25  # of the bucket: a quarter of an hour's running in an hour


def _running_metric(rule: HealthRule) -> str:
    return str((rule.params or {}).get("running_metric", RUNNING_METRIC))


def _resolution(rule: HealthRule) -> str:
    wanted = (rule.params or {}).get("resolution", Resolution.HOUR)
    return wanted if wanted in (Resolution.MINUTE, Resolution.HOUR) else Resolution.HOUR


def load_series(
    asset_ids: list[Any], metrics: Iterable[str], resolution: str, since: datetime, now: datetime
) -> tuple[dict[tuple[str, str], Series], int]:
    """{(asset id, metric): Series} of the rollups in [since, now], in one query. A bucket is
    placed at its middle (a partial current hour at the middle of what it covers so far)."""
    width = 3600.0 if resolution == Resolution.HOUR else 60.0
    sql = f"""
        SELECT asset_id::text, metric, EXTRACT(EPOCH FROM bucket)::float8,
               total / NULLIF(count, 0), maximum - minimum, maximum, minimum
        FROM {TelemetryRollup._meta.db_table}
        WHERE asset_id = ANY(%s) AND resolution = %s AND metric = ANY(%s)
          AND bucket >= %s AND bucket <= %s
        ORDER BY asset_id, metric, bucket
    """  # noqa: S608 — the table name is ours, every value is a parameter
    with connection.cursor() as cursor:
        cursor.execute(sql, [asset_ids, resolution, list(metrics), since, now])
        rows = cursor.fetchall()
    grouped: dict[tuple[str, str], list[tuple[float, float, float, float, float]]] = defaultdict(list)
    for asset_id, metric, epoch, mean, spread, high, low in rows:
        grouped[(asset_id, metric)].append((epoch, mean, spread, high, low))
    now_epoch = now.timestamp()
    series: dict[tuple[str, str], Series] = {}
    for key, points in grouped.items():
        array = np.array(points, dtype=float)
        ends = np.minimum(array[:, 0] + width, now_epoch)
        middles = (array[:, 0] + ends) / 2
        series[key] = Series(
            hours=(middles - now_epoch) / 3600.0, means=array[:, 1], spreads=array[:, 2],
            maxima=array[:, 3], minima=array[:, 4],
        )  # fmt: skip
    return series, len(rows)


def with_running(data: Series, counter: Series | None, width_hours: float) -> Series:
    """`data` with its `running` flags from the running-time counter's buckets (its advance
    within a bucket: maximum − minimum, in hours). A bucket without a counter row did not run."""
    if counter is None or counter.maxima is None or counter.minima is None:
        return data
    advance = dict(zip(np.round(counter.hours, 6), counter.maxima - counter.minima, strict=True))
    ran = np.array([advance.get(h, 0.0) for h in np.round(data.hours, 6)], dtype=float)
    # A partial current bucket needs only its share of the running.
    span = np.minimum(width_hours, np.maximum(-2 * data.hours, 1e-9))
    data.running = ran >= RUNNING_MIN_SHARE * span
    return data


def _moved(old: datetime | None, new: datetime, now: datetime) -> bool:
    if old is None:
        return True
    left = max((min(old, new) - now).total_seconds(), 0.0)
    return abs((new - old).total_seconds()) > max(3600.0, MOVE_SHARE * left)


def evaluate(asset_ids: Iterable[Any], now: datetime | None = None) -> Summary:
    """Evaluate every active health rule of the given assets' models at `now` (default: the
    present) over the rollups stored up to then; write their `AssetHealth`, and raise, move or
    clear their prediction and anomaly alarms through fleet.alarms (events, live messages and
    tickets follow). Nothing is raised for an asset in a maintenance window at `now`.

    Unknown ids are skipped; a decommissioned asset, or one whose rule is no longer active,
    only has its health alarms cleared. Costs a fixed number of queries per call
    (module docstring): callers batch (fleet.health.tasks uses 500 assets a call)."""
    now = now or timezone.now()
    summary = Summary()
    assets = {
        str(asset.pk): asset
        for asset in Asset.objects.filter(pk__in=list(asset_ids)).only(
            "id", "customer_id", "model_id", "name", "decommissioned_at"
        )
    }
    if not assets:
        return summary
    rules_by_model: dict[Any, list[HealthRule]] = defaultdict(list)
    for rule in HealthRule.objects.filter(
        asset_model_id__in={a.model_id for a in assets.values()}, is_active=True
    ):
        rules_by_model[rule.asset_model_id].append(rule)
    active: dict[tuple[str, str], Alarm] = {
        (str(alarm.asset_id), alarm.key): alarm
        for alarm in Alarm.objects.filter(
            asset_id__in=[a.pk for a in assets.values()], key__startswith=KEY_PREFIX,
            state__in=ACTIVE_ALARM_STATES,
        )
    }  # fmt: skip
    # A rule deactivated or deleted (or the asset decommissioned) leaves nothing to evaluate
    # its alarm by: it clears, and its proactive ticket resolves.
    in_service = {pk: a for pk, a in assets.items() if a.decommissioned_at is None}
    live_keys = {
        (pk, health_key(rule)) for pk, a in in_service.items() for rule in rules_by_model.get(a.model_id, ())
    }
    for asset_id, key in list(active):
        if (asset_id, key) not in live_keys:
            with transaction.atomic():
                if alarm_clear_key(asset=assets[asset_id], key=key, reason=RULE_GONE) is not None:
                    summary.cleared += 1
            del active[(asset_id, key)]
    assets = {pk: a for pk, a in in_service.items() if rules_by_model.get(a.model_id)}
    if not assets:
        return summary
    metric_info = {
        (m.asset_model_id, m.code): (m.label or m.code, m.unit)
        for m in MetricDefinition.objects.filter(asset_model_id__in=list(rules_by_model))
    }

    all_rules = [rule for rules in rules_by_model.values() for rule in rules]
    series: dict[tuple[str, str, str], Series] = {}
    for resolution in sorted({_resolution(rule) for rule in all_rules}):
        wanted = [rule for rule in all_rules if _resolution(rule) == resolution]
        lookback = max(rule.lookback_hours for rule in wanted)
        since = now - timedelta(hours=lookback)
        # uuids, not text: `asset_id = ANY(uuid[])` walks the (asset, metric, …) index.
        uuids = [a.pk for a in assets.values()]
        metrics = {rule.metric for rule in wanted} | {_running_metric(rule) for rule in wanted}
        loaded, count = load_series(uuids, metrics, resolution, since, now)
        summary.rollup_rows += count
        for (asset_id, metric), values in loaded.items():
            series[(asset_id, metric, resolution)] = values

    longest = max(rule.lookback_hours for rule in all_rules)
    windows = windows_for_assets(
        [a.pk for a in assets.values()], now - timedelta(hours=longest), now + timedelta(microseconds=1)
    )
    # In a window now: nothing is raised. A window or a stop (fault, offline) that ended within
    # the lookback: the rules look only at what came after it, so a machine serviced or
    # repaired starts clean instead of carrying the drift and the trip it was repaired of.
    maintenance = {str(pk): [span for span in spans if span[1] > now] for pk, spans in windows.items()}
    clean_since: dict[str, datetime] = {
        str(pk): max(span[1] for span in past)
        for pk, spans in windows.items()
        if (past := [span for span in spans if span[1] <= now])
    }
    for stopped_pk, at in (
        AssetStatusChange.objects.filter(
            asset_id__in=[a.pk for a in assets.values()],
            previous__in=STOPPED_STATUSES,
            at__gt=now - timedelta(hours=longest),
            at__lte=now,
        )
        .values("asset_id")
        .annotate(last=Max("at"))
        .values_list("asset_id", "last")
    ):
        key = str(stopped_pk)
        clean_since[key] = max(at, clean_since.get(key, at))

    healths: list[AssetHealth] = []
    for asset_id, asset in assets.items():
        summary.assets += 1
        detail: dict[str, Any] = {}
        findings: list[dict[str, Any]] = []
        for rule in rules_by_model[asset.model_id]:
            summary.rules += 1
            label, unit = metric_info.get((asset.model_id, rule.metric), (rule.metric, ""))
            resolution = _resolution(rule)
            data = series.get((asset_id, rule.metric, resolution))
            if data is not None:
                counter = series.get((asset_id, _running_metric(rule), resolution))
                width = 1.0 if resolution == Resolution.HOUR else 1 / 60
                start = -float(rule.lookback_hours)
                if asset_id in clean_since:
                    start = max(start, (clean_since[asset_id] - now).total_seconds() / 3600)
                data = data.take(data.hours >= start)
                if counter is not None:
                    counter = counter.take(counter.hours >= start)
                data = with_running(data, counter, width)
            key = health_key(rule)
            alarm = active.get((asset_id, key))
            entry: dict[str, Any] = {
                "rule": str(rule.pk), "name": rule.name, "metric": rule.metric, "label": label,
                "unit": unit, "kind": rule.kind, "severity": rule.severity,
            }  # fmt: skip
            if rule.kind == HealthRuleKind.TREND:
                _trend(rule, asset, data, alarm, entry, now, maintenance[asset_id], summary)
            else:
                _anomaly(rule, asset, data, alarm, entry, now, maintenance[asset_id], summary)
            detail[str(rule.pk)] = entry
            if entry.get("active"):
                findings.append(entry)
        score, risk = core.score(findings)
        healths.append(
            AssetHealth(
                asset_id=asset.pk,
                customer_id=asset.customer_id,
                score=score,
                risk=risk,
                evaluated_at=now,
                detail=detail,
            )
        )
    # The overview's health column follows a score or risk that changed (one query more).
    before = {
        pk: (score, risk)
        for pk, score, risk in AssetHealth.objects.filter(asset_id__in=[h.asset_id for h in healths])
        .order_by()
        .values_list("asset_id", "score", "risk")
    }
    publish_after_commit(
        health_messages(
            (h.customer_id, h.asset_id, h.score, h.risk)
            for h in healths
            if before.get(h.asset_id) != (h.score, h.risk)
        )
    )
    AssetHealth.objects.bulk_create(
        healths,
        update_conflicts=True,
        unique_fields=["asset"],
        update_fields=["customer", "score", "risk", "evaluated_at", "detail"],
    )
    return summary


def _raise(
    *, rule: HealthRule, asset: Asset, kind: str, message: str, now: datetime,
    expected_at: datetime | None, value: float | None, summary: Summary,
) -> None:  # fmt: skip
    with transaction.atomic():
        alarm = alarm_raise(
            asset=asset, key=health_key(rule), kind=kind, severity=rule.severity, message=message, at=now,
            value=Decimal(f"{value:.6f}") if value is not None and np.isfinite(value) else None,
        )  # fmt: skip
        if alarm is not None:
            # In the raising transaction: the AlarmRaised handler (after commit) sees both.
            Alarm.objects.filter(pk=alarm.pk).update(health_rule=rule, expected_at=expected_at)
            summary.raised += 1
            summary.by_kind[kind] = summary.by_kind.get(kind, 0) + 1


def _clear(*, rule: HealthRule, asset: Asset, reason: str, summary: Summary) -> None:
    with transaction.atomic():
        if alarm_clear_key(asset=asset, key=health_key(rule), reason=reason) is not None:
            summary.cleared += 1


def _trend(
    rule: HealthRule, asset: Asset, data: Series | None, alarm: Alarm | None, entry: dict[str, Any],
    now: datetime, maintenance: list[Any], summary: Summary,
) -> None:  # fmt: skip
    limit = float(rule.limit) if rule.limit is not None else None
    entry["limit"] = limit
    entry["horizon_hours"] = rule.horizon_hours
    hours, values = _trend_series(rule, data) if data is not None else (None, None)
    verdict = (
        core.trend_recent(
            hours,
            values,
            limit=limit,
            comparison=rule.comparison,
            confidence=float((rule.params or {}).get("confidence", 0.95)),
            recent_share=float((rule.params or {}).get("recent_share", 0.25)),
        )
        if hours is not None and values is not None and limit is not None
        else None
    )
    if verdict is None:
        summary.no_data += 1
        entry["active"] = alarm is not None
        if alarm is not None and alarm.expected_at is not None:
            entry["expected_at"] = alarm.expected_at.isoformat()
            entry["hours_to_limit"] = max((alarm.expected_at - now).total_seconds() / 3600, 0)
        return
    hours_to = verdict.hours_to_limit
    entry.update(
        slope_per_hour=verdict.slope_per_hour, level=verdict.level, confident=verdict.confident,
        points=verdict.points, hours_to_limit=hours_to, hours_to_limit_late=verdict.hours_to_limit_late,
    )  # fmt: skip
    # Raise when even the latest crossing the slope's interval allows is within the horizon;
    # keep it while that is within 1.5 horizons (or the fitted level is past the limit).
    late = verdict.hours_to_limit_late
    due = late is not None and verdict.confident and late <= rule.horizon_hours
    still = hours_to is not None and (
        hours_to == 0 or (late is not None and late <= rule.horizon_hours * CLEAR_HORIZON_FACTOR)
    )
    if hours_to is not None and limit is not None:
        expected_at = now + timedelta(hours=hours_to)
        entry["expected_at"] = expected_at.isoformat()
        # The forecast the chart draws: from the fitted level now to the limit (dashed).
        entry["forecast"] = [[now.isoformat(), verdict.level], [expected_at.isoformat(), limit]]
    label, unit = entry["label"], entry["unit"]
    if alarm is None:
        entry["active"] = False
        if due and hours_to is not None:
            if maintenance:
                summary.suppressed += 1
                return
            message = trend_message(rule, label, unit, hours_to)
            _raise(
                rule=rule, asset=asset, kind=AlarmKind.PREDICTION, message=message, now=now,
                expected_at=now + timedelta(hours=hours_to), value=verdict.level, summary=summary,
            )  # fmt: skip
            entry.update(active=True, message=message)
        return
    if not still or hours_to is None:
        _clear(rule=rule, asset=asset, reason=TREND_RECOVERED, summary=summary)
        entry["active"] = False
        return
    entry.update(active=True, message=alarm.message)
    expected_at = now + timedelta(hours=hours_to)
    if _moved(alarm.expected_at, expected_at, now):
        message = trend_message(rule, label, unit, hours_to)[:300]
        Alarm.objects.filter(pk=alarm.pk).update(expected_at=expected_at, message=message)
        entry["message"] = message
        summary.moved += 1


def _trend_series(rule: HealthRule, data: Series) -> tuple[np.ndarray, np.ndarray]:
    """What a trend is fitted on. Where the asset reports its running time: the buckets in which
    it ran, each by its peak on the limit's side (maximum for gt/gte, minimum for lt/lte) — the
    level the machine reaches while it works, which idle hours and the run/pause mix of an hour
    do not pull about (an hourly mean of a one-shift machine swings more at its morning start
    than a week's drift). Otherwise the buckets' means."""
    if data.running is None or data.maxima is None or data.minima is None:
        return data.hours, data.means
    peaks = data.maxima if rule.comparison in ("gt", "gte") else data.minima
    return data.hours[data.running], peaks[data.running]


def _anomaly(
    rule: HealthRule, asset: Asset, data: Series | None, alarm: Alarm | None, entry: dict[str, Any],
    now: datetime, maintenance: list[Any], summary: Summary,
) -> None:  # fmt: skip
    params = rule.params or {}
    if data is not None and data.running is not None:
        # Like with like: the running hours against the running hours of its normal.
        data = data.take(data.running)
    verdict = (
        core.anomaly(
            data.hours,
            data.means,
            data.spreads,
            recent_hours=float(params.get("recent_hours", 3)),
            min_scale=float(params.get("min_scale", 0)),
        )
        if data is not None
        else None
    )
    sensitivity = float(rule.sensitivity)
    if verdict is None:
        summary.no_data += 1
        entry["active"] = alarm is not None
        return
    entry.update(
        z=verdict.z, z_level=verdict.z_level, z_spread=verdict.z_spread, baseline=verdict.baseline,
        recent=verdict.recent, sensitivity=sensitivity, points=verdict.points,
    )  # fmt: skip
    if alarm is None:
        entry["active"] = False
        if verdict.z > sensitivity:
            if maintenance:
                summary.suppressed += 1
                return
            message = anomaly_message(entry["label"], entry["unit"], verdict)
            _raise(
                rule=rule, asset=asset, kind=AlarmKind.ANOMALY, message=message, now=now,
                expected_at=None, value=verdict.recent, summary=summary,
            )  # fmt: skip
            entry.update(active=True, message=message)
        return
    if verdict.z < sensitivity * CLEAR_SENSITIVITY_SHARE:
        _clear(rule=rule, asset=asset, reason=ANOMALY_GONE, summary=summary)
        entry["active"] = False
        return
    entry.update(active=True, message=alarm.message)
