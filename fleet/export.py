"""An asset's telemetry as CSV: its raw heartbeats or its rollups over a range (docs/api.md,
"GET /api/v1/assets/{id}/telemetry.csv").

The file is for machines, like billing's exports: times are ISO 8601 instants in UTC, readings
are written as stored (a dot decimal, no grouping) whatever the reader's locale. Rows are read
with a server-side cursor and written one at a time, so a month of raw readings streams
without being held in memory; each resolution has a longest range so that one request cannot
read the whole table.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import QuerySet

from fleet.models import Asset, Heartbeat, MetricDefinition, TelemetryRollup
from fleet.telemetry import bucket_start

# The longest range one export may cover, per resolution.
LONGEST = {
    "raw": timedelta(days=31),
    "minute": timedelta(days=31),
    "hour": timedelta(days=3 * 366),
    "day": timedelta(days=20 * 366),
}
CHUNK = 2000  # rows a server-side cursor fetches at a time
RAW_FIXED = ["ts", "seq", "status", "fault_code"]
ROLLUP_HEADER = ["bucket", "metric", "count", "min", "avg", "max"]


class RangeTooLongError(ValueError):
    pass


def default_resolution(start: datetime, end: datetime) -> str:
    """Raw readings up to 8 days (the asset page's week and a little more), minute rollups up
    to 31 days, then hours, then days."""
    span = end - start
    if span <= timedelta(days=8):
        return "raw"
    for resolution in ("minute", "hour"):
        if span <= LONGEST[resolution]:
            return resolution
    return "day"


def check_span(start: datetime, end: datetime, resolution: str) -> None:
    if end - start > LONGEST[resolution]:
        days = LONGEST[resolution].days
        raise RangeTooLongError(f"At most {days} days at resolution “{resolution}”: narrow the range.")


def utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _cell(value: Any) -> Any:
    return "" if value is None else value


def metric_codes(asset: Asset, metric: str | None) -> list[str]:
    codes = MetricDefinition.objects.filter(asset_model_id=asset.model_id).values_list("code", flat=True)
    return [code for code in codes if metric is None or code == metric]


def raw_rows(asset: Asset, start: datetime, end: datetime, codes: list[str]) -> Iterator[list[Any]]:
    """A header, then one row per heartbeat in [start, end), oldest first; one column per metric."""
    yield RAW_FIXED + codes
    rows = (
        Heartbeat.objects.for_customer(asset.customer_id)
        .filter(asset=asset, ts__gte=start, ts__lt=end)
        .order_by("ts", "seq")
        .values_list("ts", "seq", "status", "fault_code", "metrics")
    )
    for ts, seq, status, fault_code, metrics in rows.iterator(chunk_size=CHUNK):
        yield [utc(ts), seq, status, fault_code, *(_cell(metrics.get(code)) for code in codes)]


def rollup_rows(
    asset: Asset, start: datetime, end: datetime, resolution: str, codes: list[str]
) -> Iterator[list[Any]]:
    """A header, then one row per bucket and metric holding data, by bucket then metric."""
    yield ROLLUP_HEADER
    rollups: QuerySet[TelemetryRollup] = TelemetryRollup.objects.for_customer(asset.customer_id).filter(
        asset=asset,
        resolution=resolution,
        metric__in=codes,
        bucket__gte=bucket_start(start, resolution),
        bucket__lt=end,
    )
    fields = ("bucket", "metric", "count", "minimum", "total", "maximum")
    for bucket, metric, count, least, total, greatest in (
        rollups.order_by("bucket", "metric").values_list(*fields).iterator(chunk_size=CHUNK)
    ):
        yield [utc(bucket), metric, count, least, total / count, greatest]


def rows(
    asset: Asset, *, start: datetime, end: datetime, resolution: str, metric: str | None
) -> Iterator[list[Any]]:
    codes = metric_codes(asset, metric)
    if resolution == "raw":
        return raw_rows(asset, start, end, codes)
    return rollup_rows(asset, start, end, resolution, codes)


def filename(asset: Asset, start: datetime, end: datetime, resolution: str) -> str:
    stamp = "%Y%m%dT%H%MZ"
    first, last = start.astimezone(UTC).strftime(stamp), end.astimezone(UTC).strftime(stamp)
    serial = "".join(c if c.isalnum() or c in "-_" else "_" for c in asset.serial_number)
    return f"{serial}-{resolution}-{first}-{last}.csv"
