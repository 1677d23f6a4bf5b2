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
from fleet.sql import binding_cursor

MAX_POINTS = 2000
BUCKET_SECONDS = {"raw": 0, "minute": 60, "hour": 3600, "day": 86400}


def bucket_start(moment: datetime, resolution: str) -> datetime:
    if resolution == Resolution.MINUTE:
        return moment.replace(second=0, microsecond=0)
    if resolution == Resolution.HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


# customer, asset, metric, minute: the worker's minute rollups (fleet/ingest/store.py), by key
Key = tuple[str, str, str, datetime]


STAGE = "fleet_rollup_stage"  # a temporary table per PostgreSQL session
COPY_FROM = 500  # minute rollups from which a batch COPYs them; fewer go as arrays


def _merge_sql(source: str) -> str:
    """The upsert of the minute rollups in `source` (a query with the STAGE table's columns)
    and of the hour and day buckets derived from them (date_trunc in UTC)."""
    table = TelemetryRollup._meta.db_table
    columns = "(customer_id, asset_id, metric, resolution, bucket, count, total, minimum, maximum)"
    conflict = (
        "ON CONFLICT (asset_id, metric, resolution, bucket) DO UPDATE SET "
        f"count = {table}.count + excluded.count, total = {table}.total + excluded.total, "
        f"minimum = LEAST({table}.minimum, excluded.minimum), "
        f"maximum = GREATEST({table}.maximum, excluded.maximum)"
    )
    return (
        f"WITH m AS ({source}) "  # noqa: S608 - our table names
        f"INSERT INTO {table} {columns} "
        "SELECT customer_id, asset_id, metric, 'minute', bucket, count, total, minimum, maximum "
        "FROM m UNION ALL "
        "SELECT customer_id, asset_id, metric, r.resolution, "
        "date_trunc(r.resolution, bucket, 'UTC'), "
        "sum(count), sum(total), min(minimum), max(maximum) "
        "FROM m CROSS JOIN (VALUES ('hour'), ('day')) AS r(resolution) "
        f"GROUP BY 1, 2, 3, 4, 5 {conflict}"
    )


FROM_STAGE = _merge_sql(f"DELETE FROM {STAGE} RETURNING *")  # noqa: S608 - our table
FROM_ARRAYS = _merge_sql(
    "SELECT * FROM unnest(%b::uuid[], %b::uuid[], %b::text[], %b::timestamptz[], %b::integer[], "
    "%b::float8[], %b::float8[], %b::float8[]) "
    "AS u(customer_id, asset_id, metric, bucket, count, total, minimum, maximum)"
)


def write(rollups: dict[Key, list[float]]) -> None:
    """Merge the batch's rollups (every resolution) into the table with one upsert.

    One statement derives the hour and day buckets from the minute rollups and upserts all
    three. Its minute rollups come as arrays (server-side binding: one round trip) or, from
    COPY_FROM of them (a backlog's large batches), COPYed into a temporary table first, which
    is faster in bulk.
    """
    if not rollups:
        return
    if len(rollups) < COPY_FROM:
        with binding_cursor() as cursor:
            keys, values = list(rollups), list(rollups.values())
            cursor.execute(
                FROM_ARRAYS,
                [
                    [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [k[3] for k in keys],
                    [int(v[0]) for v in values], [float(v[1]) for v in values],
                    [float(v[2]) for v in values], [float(v[3]) for v in values],
                ],
            )  # fmt: skip
        return
    with connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor under Django's wrapper
        # Each time: a rolled-back transaction takes a table it created with it. Emptied by
        # every commit (ON COMMIT DELETE ROWS truncates its file): the rows a DELETE leaves
        # dead are never vacuumed in a temporary table, so over a pooled connection's life
        # it grew by every batch's rows and each merge scanned them all.
        raw.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} (customer_id uuid, asset_id uuid, "
            "metric text, bucket timestamptz, count integer, total float8, minimum float8, "
            "maximum float8) ON COMMIT DELETE ROWS"
        )
        with raw.copy(f"COPY {STAGE} FROM STDIN") as copy:
            for (customer, asset, metric, minute), (count, total, least, greatest) in rollups.items():
                copy.write_row((customer, asset, metric, minute, int(count), total, least, greatest))
        raw.execute(FROM_STAGE)


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
        # Tuples, not model instances: up to MAX_POINTS rows (docs/performance.md, S5).
        points = [
            {"t": bucket, "min": least, "avg": total / count, "max": greatest, "count": count}
            for bucket, least, total, greatest, count in rollups.order_by("bucket").values_list(
                "bucket", "minimum", "total", "maximum", "count"
            )
        ]
    return {"metric": metric, "resolution": resolution, "from": start, "to": end, "points": points}
