"""S5's measurements (bench/telemetry.py runs them in its child, after _telemetry_load).

Requests go through Django's test Client in this process (the full middleware stack, URL
routing, session auth, templates and DRF; no socket, no ASGI server), as the customer
viewer of the first customer. Each latency is over `samples` requests after a warm-up of
five, each chart request for a different asset of that customer; the overview's first page,
its last page and its first page ordered by risk (`?sort=risk`); first, the floor: `/healthz`
through the same client.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from datetime import datetime, timedelta
from typing import Any

from _common import log

WARM_UP = 5
# The chart ranges the asset page offers; the series picks the resolution (fleet/telemetry.py):
# 2 h reads raw heartbeats, 24 h minute rollups, 7 d and 30 d hour rollups.
CHART_RANGES = {
    "2h": timedelta(hours=2),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}

CSV_RANGES = {"24h": timedelta(hours=24), "30d": timedelta(days=30)}


def percentiles(values: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50_ms": round(cuts[49], 1),
        "p95_ms": round(cuts[94], 1),
        "p99_ms": round(cuts[98], 1),
        "max_ms": round(max(values), 1),
        "samples": len(values),
    }


def _timed(client: Any, urls: list[str]) -> tuple[dict[str, float], dict[str, Any]]:
    timings, sizes, points = [], [], []
    for n, url in enumerate(urls):
        started = time.perf_counter()
        response = client.get(url, HTTP_HOST="localhost")
        # A streamed answer (the CSV export) is timed until its last byte is written.
        content = b"".join(response.streaming_content) if response.streaming else response.content
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}: {content[:500]!r}")
        if n >= WARM_UP:
            timings.append(elapsed)
            sizes.append(len(content))
            if response.streaming:
                points.append(content.count(b"\n") - 1)  # rows after the header
            elif response.get("Content-Type", "").startswith("application/json"):
                body = response.json()
                points.append(len(body.get("points", body.get("results", []))))
    extra: dict[str, Any] = {"response_bytes_median": int(statistics.median(sizes))}
    if points:
        extra["points_median"] = int(statistics.median(points))
    return percentiles(timings), extra


def _breakdown(client: Any, url: str) -> dict[str, Any]:
    """One more request with its queries recorded: how many, and their time against the whole."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        response = client.get(url, HTTP_HOST="localhost")
        if response.streaming:  # its queries run as it is read
            b"".join(response.streaming_content)
        elapsed = (time.perf_counter() - started) * 1000
    sql_ms = sum(float(q["time"]) for q in queries.captured_queries) * 1000
    return {"queries": len(queries), "sql_ms": round(sql_ms, 1), "one_request_ms": round(elapsed, 1)}


def latencies(user: Any, customer: Any, samples: int, now: datetime) -> dict[str, Any]:
    from django.test import Client
    from django.urls import reverse

    from fleet.models import Asset
    from fleet.selectors import OVERVIEW_PAGE_SIZE

    client = Client()
    client.force_login(user)
    asset_ids = list(Asset.objects.filter(customer=customer).values_list("pk", flat=True))
    rng = random.Random(5)
    result: dict[str, Any] = {"customer_assets": len(asset_ids)}
    # The floor: the same client and middleware (session, user, time zone) before a view that
    # does nothing; on a shared machine it shows how much of a figure is the machine's load.
    log(f"floor (/healthz), {samples} requests")
    figures, extra = _timed(client, [reverse("healthz")] * (samples + WARM_UP))
    result["floor"] = {**figures, "response_bytes_median": extra["response_bytes_median"]}
    overview = reverse("fleet_overview")
    pages = max(1, math.ceil(len(asset_ids) / OVERVIEW_PAGE_SIZE))
    # The first page, the last (the deepest OFFSET) and the whole fleet ordered by health.
    for name, url in (
        ("overview", overview),
        ("overview_last_page", f"{overview}?page={pages}"),
        ("overview_by_risk", f"{overview}?sort=risk"),
    ):
        log(f"{name} ({len(asset_ids)} assets, {pages} pages), {samples} requests")
        figures, extra = _timed(client, [url] * (samples + WARM_UP))
        result[name] = {**figures, **extra, **_breakdown(client, url)}
    # The charts, then the telemetry CSV export (docs/api.md): a day of raw heartbeats, every
    # metric, and 30 days at its default there (minute rollups of every metric).
    ranged = [("chart", "asset-telemetry", "metric=temp_c&", span) for span in CHART_RANGES.items()]
    ranged += [("csv", "asset-telemetry-csv", "", span) for span in CSV_RANGES.items()]
    for kind, url_name, query, (name, span) in ranged:
        urls = [
            reverse(url_name, args=[rng.choice(asset_ids)])
            + f"?{query}from={(now - span).isoformat().replace('+00:00', 'Z')}"
            + f"&to={now.isoformat().replace('+00:00', 'Z')}"
            for _ in range(samples + WARM_UP)
        ]
        log(f"{kind} {name}, {samples} requests")
        figures, extra = _timed(client, urls)
        result[f"{kind}_{name}"] = {**figures, **extra, **_breakdown(client, urls[-1])}
    urls = [reverse("asset-heartbeats", args=[rng.choice(asset_ids)]) for _ in range(samples + WARM_UP)]
    log(f"raw heartbeats API page, {samples} requests")
    figures, extra = _timed(client, urls)
    result["heartbeats_page"] = {**figures, **extra, **_breakdown(client, urls[-1])}
    return result


def explain(customer: Any, now: datetime) -> dict[str, list[str]]:
    """EXPLAIN (ANALYZE, BUFFERS) of the chart queries for one asset (what the ORM sends)."""
    from django.db import connection

    from fleet import telemetry
    from fleet.models import Asset, Heartbeat, TelemetryRollup

    asset = Asset.objects.filter(customer=customer).order_by("pk").first()
    assert asset is not None
    plans: dict[str, list[str]] = {}
    for name, resolution, span in (
        ("24h", "minute", CHART_RANGES["24h"]),
        ("30d", "hour", CHART_RANGES["30d"]),
    ):
        query = TelemetryRollup.objects.for_customer(customer.pk).filter(
            asset=asset, metric="temp_c", resolution=resolution,
            bucket__gte=telemetry.bucket_start(now - span, resolution), bucket__lt=now,
        ).order_by("bucket")  # fmt: skip
        plans[f"chart_{name}"] = query.explain(analyze=True, buffers=True).splitlines()
    raw = (
        Heartbeat.objects.for_customer(customer.pk)
        .filter(asset=asset, ts__gte=now - CHART_RANGES["2h"], ts__lt=now, metrics__has_key="temp_c")
        .order_by("ts")
    )
    plans["chart_2h"] = raw.explain(analyze=True, buffers=True).splitlines()
    with connection.cursor() as cursor:
        cursor.execute("SHOW shared_buffers")
        plans["shared_buffers"] = [cursor.fetchone()[0]]
    return plans


def disk() -> dict[str, Any]:
    """Bytes on disk (heap + indexes + TOAST) per row of the partitioned tables."""
    from django.db import connection

    result: dict[str, Any] = {}
    with connection.cursor() as cursor:
        for name, parent in (
            ("heartbeat", "fleet_heartbeat"),
            ("minute_rollup", "fleet_telemetryrollup_minute"),
            ("coarse_rollup", "fleet_telemetryrollup_coarse"),
        ):
            cursor.execute(
                "SELECT coalesce(sum(pg_total_relation_size(relid)), 0), "
                "coalesce(sum(pg_relation_size(relid)), 0), coalesce(sum(pg_indexes_size(relid)), 0), "
                "count(*) FILTER (WHERE isleaf) FROM pg_partition_tree(%s::regclass)",
                [parent],
            )
            total, heap, indexes, leaves = cursor.fetchone()
            cursor.execute(f"SELECT count(*) FROM {parent}")  # noqa: S608 - our tables
            (rows,) = cursor.fetchone()
            # Each index of the parent: the bytes of its partitions' indexes, per row.
            cursor.execute(
                "SELECT (SELECT c.relname FROM pg_partition_ancestors(x.indexrelid) a "
                "JOIN pg_class c ON c.oid = a.relid WHERE NOT EXISTS "
                "(SELECT 1 FROM pg_inherits h WHERE h.inhrelid = a.relid)), "
                "sum(pg_relation_size(x.indexrelid)) FROM pg_partition_tree(%s::regclass) t "
                "JOIN pg_index x ON x.indrelid = t.relid GROUP BY 1 ORDER BY 1",
                [parent],
            )
            by_index = {name: round(int(size) / rows, 1) for name, size in cursor.fetchall()} if rows else {}
            result[name] = {
                "rows": rows,
                "partitions": leaves,
                "total_bytes": int(total),
                "heap_bytes": int(heap),
                "index_bytes": int(indexes),
                "bytes_per_row": round(int(total) / rows, 1) if rows else None,
                "heap_bytes_per_row": round(int(heap) / rows, 1) if rows else None,
                "index_bytes_per_row": round(int(indexes) / rows, 1) if rows else None,
                "index_bytes_per_row_by_index": by_index,
            }
    return result


def drop_a_day() -> dict[str, Any]:
    """Time `fleet.partitions.prune` dropping one day's partition: the oldest one the data
    fills from its start (the oldest partition holding heartbeats begins part-way through
    its day; where no partition is full, that one). Older partitions (the part day, and the
    empty ones premade back to INGEST_MAX_AGE_DAYS) go first, untimed; then the prune with
    `now` one retention window after the partition's end."""
    from django.conf import settings
    from django.db import connection

    from fleet import partitions

    days = settings.RAW_RETENTION_DAYS
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(ts), max(ts) FROM fleet_heartbeat")
        oldest, newest = cursor.fetchone()
    listed = partitions.partitions(partitions.RAW)
    holding = [p for p in listed if p[2] > oldest and p[1] <= newest]
    target = next((p for p in holding if p[1] >= oldest and p[2] <= newest), holding[0])
    dropped_before = partitions.prune(partitions.RAW, now=target[1] + timedelta(days=days))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), pg_total_relation_size('{target[0]}') FROM {target[0]}")  # noqa: S608
        rows, size = cursor.fetchone()
    started = time.perf_counter()
    dropped = partitions.prune(partitions.RAW, now=target[2] + timedelta(days=days))
    seconds = time.perf_counter() - started
    return {
        "partition": target[0],
        "rows": rows,
        "bytes": size,
        "seconds": round(seconds, 3),
        "dropped": dropped,
        "older_partitions_dropped_first": len(dropped_before),
    }
