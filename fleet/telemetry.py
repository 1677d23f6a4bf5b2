"""Telemetry over time: rollups written by the ingest worker, series read by charts and the API.

A series is at most MAX_POINTS points: raw readings for short ranges, else minute / hour /
day buckets with min, avg and max. Rollups make every resolution but raw an indexed range
scan on (asset, metric, resolution, bucket), however much raw data there is.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models.fields.json import KeyTextTransform

from fleet.models import Asset, Heartbeat, Resolution, TelemetryRollup

MAX_POINTS = 2000
BUCKET_SECONDS = {"raw": 0, "minute": 60, "hour": 3600, "day": 86400}


def bucket_start(moment: datetime, resolution: str) -> datetime:
    if resolution == Resolution.MINUTE:
        return moment.replace(second=0, microsecond=0)
    if resolution == Resolution.HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


Key = tuple[str, str, str, str, datetime]  # customer, asset, metric, resolution, bucket


def accumulate(
    rollups: dict[Key, list[float]], *, customer_id: str, asset_id: str, ts: datetime, metrics: dict[str, Any]
) -> None:
    """Fold one newly stored reading into the batch's pending rollups [count, sum, min, max]."""
    minute = ts.replace(second=0, microsecond=0)
    hour = minute.replace(minute=0)
    buckets = (("minute", minute), ("hour", hour), ("day", hour.replace(hour=0)))
    for code, value in metrics.items():
        number = float(value)
        for resolution, bucket in buckets:
            key = (customer_id, asset_id, code, resolution, bucket)
            entry = rollups.get(key)
            if entry is None:
                rollups[key] = [1, number, number, number]
            else:
                entry[0] += 1
                entry[1] += number
                entry[2] = min(entry[2], number)
                entry[3] = max(entry[3], number)


def write(rollups: dict[Key, list[float]]) -> None:
    """Merge the batch's rollups into the table with one upsert."""
    if not rollups:
        return
    least, greatest = ("LEAST", "GREATEST") if connection.vendor == "postgresql" else ("MIN", "MAX")
    table = TelemetryRollup._meta.db_table
    pk = Asset._meta.pk
    assert pk is not None
    ops = connection.ops
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {table} "  # noqa: S608 - the table name is ours, the values are parameters
            "(customer_id, asset_id, metric, resolution, bucket, count, total, minimum, maximum) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (asset_id, metric, resolution, bucket) DO UPDATE SET "
            f"count = {table}.count + excluded.count, total = {table}.total + excluded.total, "
            f"minimum = {least}({table}.minimum, excluded.minimum), "
            f"maximum = {greatest}({table}.maximum, excluded.maximum)",
            [
                (
                    pk.get_db_prep_value(customer, connection), pk.get_db_prep_value(asset, connection),
                    metric, resolution, ops.adapt_datetimefield_value(bucket), int(v[0]), v[1], v[2], v[3],
                )
                for (customer, asset, metric, resolution, bucket), v in rollups.items()
            ],
        )  # fmt: skip


class RangeTooLargeError(ValueError):
    pass


def pick_resolution(start: datetime, end: datetime) -> str:
    """The finest resolution that fits the range in MAX_POINTS (raw up to two hours)."""
    span = (end - start).total_seconds()
    if span <= 2 * 3600:
        return "raw"
    for resolution in ("minute", "hour", "day"):
        if span / BUCKET_SECONDS[resolution] <= MAX_POINTS:
            return resolution
    return "day"


def series(
    *, asset: Asset, metric: str, start: datetime, end: datetime, resolution: str | None
) -> dict[str, Any]:
    resolution = resolution or pick_resolution(start, end)
    if (
        resolution != "raw"
        and math.ceil((end - start).total_seconds() / BUCKET_SECONDS[resolution]) > MAX_POINTS
    ):
        raise RangeTooLargeError(f"More than {MAX_POINTS} points: choose a coarser resolution.")
    if resolution == "raw":
        rows = (
            Heartbeat.objects.for_customer(asset.customer_id)
            .filter(asset=asset, ts__gte=start, ts__lt=end, metrics__has_key=metric)
            .annotate(value=KeyTextTransform(metric, "metrics"))
            .order_by("ts")
            .values_list("ts", "value")[: MAX_POINTS + 1]
        )
        points = [{"t": ts, "value": float(value)} for ts, value in rows]
        if len(points) > MAX_POINTS:
            raise RangeTooLargeError(f"More than {MAX_POINTS} raw readings: choose a coarser resolution.")
    else:
        rollups = TelemetryRollup.objects.for_customer(asset.customer_id).filter(
            asset=asset,
            metric=metric,
            resolution=resolution,
            bucket__gte=bucket_start(start, resolution),
            bucket__lt=end,
        )
        points = [
            {"t": r.bucket, "min": r.minimum, "avg": r.total / r.count, "max": r.maximum, "count": r.count}
            for r in rollups.order_by("bucket")
        ]
    return {"metric": metric, "resolution": resolution, "from": start, "to": end, "points": points}


PRUNE_CHUNK = 5000


def prune_raw(*, older_than: datetime) -> int:
    """Delete raw heartbeats older than `older_than`, in chunks (rollups and usage stay)."""
    deleted = 0
    while True:
        ids = list(
            Heartbeat.objects.filter(received_at__lt=older_than, ts__lt=older_than).values_list(
                "pk", flat=True
            )[:PRUNE_CHUNK]
        )
        if not ids:
            return deleted
        deleted += Heartbeat.objects.filter(pk__in=ids).delete()[0]
        if len(ids) < PRUNE_CHUNK:
            return deleted
