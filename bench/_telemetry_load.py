"""S5's data set, generated inside PostgreSQL (bench/telemetry.py runs it in its child).

Customers with a site and an equal share of the assets (one device each, the bench
compressor model), one customer viewer per customer; then, by INSERT … SELECT from
generate_series into the partitioned tables (pg_partman made the partitions through
fleet/partitions.py first):

- raw heartbeats: every asset once a minute, the newest minute now, as many minutes back as
  `--heartbeats` needs (10 M over 10,000 assets: 1,000 minutes); metrics and increments as the
  ingest worker stores them;
- minute rollups of `temp_c` for the same minutes, for `--minute-assets` assets (what the
  retention keeps of the heartbeats loaded; the real worker writes one per metric);
- hour and day rollups of `temp_c` for `--hour-days` days back, for `--hour-assets` assets.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import bench_asset_model, log

METRICS_SQL = (
    "jsonb_build_object('run_hours', round(m.m / 60.0, 4), 'energy_kwh', round(m.m * 0.25, 3), "
    "'pressure_bar', round((7 + random() * 0.3)::numeric, 3), "
    "'temp_c', round((65 + (random() - 0.5) * 6)::numeric, 2))"
)
INCREMENTS_SQL = "jsonb_build_object('run_hours', '0.016667', 'energy_kwh', '0.250000')"
CHUNK_ROWS = 1_000_000  # rows per INSERT statement (progress, and no giant transaction)


def create_fleet(customers: int, assets: int) -> dict[str, Any]:
    """Customers, sites, assets, devices and one viewer per customer, through the ORM."""
    from django.contrib.auth.hashers import make_password

    from fleet.models import Asset, Device, Site
    from portal.models import Customer, User
    from portal.roles import Role

    model = bench_asset_model()
    made = Customer.objects.bulk_create(
        [Customer(name=f"Bench customer {c}", slug=f"bench-{c}") for c in range(customers)]
    )
    sites = Site.objects.bulk_create([Site(customer=c, name=f"Plant {c.slug}") for c in made])
    rows = [
        Asset(
            customer=sites[n % customers].customer,
            site=sites[n % customers],
            model=model,
            serial_number=f"S5-{n:07d}",
            name=f"Compressor {n}",
        )
        for n in range(assets)
    ]
    Asset.objects.bulk_create(rows, batch_size=2000)
    Device.objects.bulk_create(
        [
            Device(customer_id=a.customer_id, asset=a, serial_number=f"S5-D{n:07d}")
            for n, a in enumerate(rows)
        ],
        batch_size=2000,
    )
    unusable = make_password(None)
    users = User.objects.bulk_create(
        [
            User(email=f"viewer{n}@s5.example", role=Role.CUSTOMER_VIEWER, customer=c, password=unusable)
            for n, c in enumerate(made)
        ]
    )
    return {"customer": made[0], "user": users[0], "model": model}


def _insert_chunks(
    cursor: Any, what: str, sql: str, units: int, per_unit: int, params: dict[str, Any]
) -> tuple[int, float]:
    """Run `sql` (with %(low)s / %(high)s over [0, units) and `params`) in chunks of ~CHUNK_ROWS rows."""
    step = max(1, CHUNK_ROWS // max(per_unit, 1))
    rows, started = 0, time.monotonic()
    for low in range(0, units, step):
        cursor.execute(sql, {**params, "low": low, "high": min(units, low + step) - 1})
        rows += cursor.rowcount
        rate = rows / max(time.monotonic() - started, 1e-9)
        log(f"{what}: {rows:,} rows ({rate:,.0f}/s)")
    return rows, time.monotonic() - started


def load(
    customer: Any, heartbeats: int, assets: int, minute_assets: int, hour_assets: int, hour_days: int
) -> dict[str, Any]:
    """Heartbeats and rollups by SQL; returns rows and seconds per table. Rollups go to the
    first `minute_assets` / `hour_assets` assets, `customer`'s (the one measured) first."""
    from django.db import connection

    from fleet import partitions

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    minutes = math.ceil(heartbeats / assets)
    first = now - timedelta(minutes=minutes - 1)
    partitions.maintain()
    result: dict[str, Any] = {"heartbeat_minutes": minutes, "first_heartbeat": first.isoformat()}
    # The measured customer's devices first (numbered `n`), so the rollups go to its assets.
    devices = (
        "(SELECT d.id, d.asset_id, d.customer_id, row_number() OVER "
        "(ORDER BY d.customer_id <> %(customer)s, d.asset_id) AS n FROM fleet_device d) d"
    )
    with connection.cursor() as cursor:
        rows, seconds = _insert_chunks(
            cursor,
            "heartbeats",
            "INSERT INTO fleet_heartbeat (customer_id, asset_id, device_id, seq, ts, received_at, status, "  # noqa: S608
            "fault_code, metrics, increments) "
            f"SELECT d.customer_id, d.asset_id, d.id, m.m, ts.ts, ts.ts + interval '2 seconds', 'ok', '', "
            f"{METRICS_SQL}, {INCREMENTS_SQL} "
            "FROM generate_series(%(low)s, %(high)s) AS m(m) "
            "CROSS JOIN LATERAL (SELECT %(first)s::timestamptz + make_interval(mins => m.m) AS ts) ts "
            f"CROSS JOIN {devices} ORDER BY m.m, d.n",
            minutes,
            assets,
            {"first": first, "customer": customer.pk},
        )
        result["heartbeats"] = {"rows": rows, "seconds": round(seconds, 1)}
        rollup = (
            "INSERT INTO fleet_telemetryrollup (customer_id, asset_id, metric, resolution, bucket, count, "  # noqa: S608
            "total, minimum, maximum) SELECT d.customer_id, d.asset_id, 'temp_c', '{res}', b.b, {count}, "
            "{count} * v.mean, v.mean - 2, v.mean + 2 "
            "FROM generate_series(%(low)s, %(high)s) AS g(g) "
            "CROSS JOIN LATERAL (SELECT %(first)s::timestamptz + make_interval({unit} => g.g) AS b) b "
            f"CROSS JOIN {devices} "
            "CROSS JOIN LATERAL (SELECT 65 + (random() - 0.5) * 6 + 0 * g.g AS mean) v "
            "WHERE d.n <= {limit} ORDER BY g.g, d.n"
        )
        hour_first = now.replace(minute=0) - timedelta(days=hour_days)
        # resolution, interval unit, readings per bucket, buckets, assets, first bucket
        for res, unit, count, buckets, limit, since in (
            ("minute", "mins", 1, minutes, minute_assets, first),
            ("hour", "hours", 60, hour_days * 24, hour_assets, hour_first),
            ("day", "days", 1440, hour_days, hour_assets, hour_first.replace(hour=0)),
        ):
            rows, seconds = _insert_chunks(
                cursor,
                f"{res} rollups",
                rollup.format(res=res, count=count, unit=unit, limit=limit),
                buckets,
                limit,
                {"first": since, "customer": customer.pk},
            )
            result[f"{res}_rollups"] = {"rows": rows, "seconds": round(seconds, 1), "assets": limit}
        started = time.monotonic()
        for table in ("fleet_heartbeat", "fleet_telemetryrollup"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
        result["vacuum_analyze_seconds"] = round(time.monotonic() - started, 1)
    return result
