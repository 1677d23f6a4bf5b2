"""S5's data set, generated inside PostgreSQL (bench/telemetry.py runs it in its child).

Customers with a site and an equal share of the assets (one device each, the bench
compressor model), one customer viewer per customer; then, by INSERT … SELECT from
generate_series, into the partitions pg_partman made (through fleet/partitions.py):

- raw heartbeats: every asset once a minute, the newest minute now, as many minutes back as
  `--heartbeats` needs (10 M over 10,000 assets: 1,000 minutes, 100 M: 10,000 minutes in
  eight daily partitions); metrics and increments as the
  ingest worker stores them;
- minute rollups of `temp_c` for the same minutes, for `--minute-assets` assets (what the
  retention keeps of the heartbeats loaded; the real worker writes one per metric);
- hour and day rollups of `temp_c` for `--hour-days` days back, for `--hour-assets` assets.

Each partition that gets rows is loaded without its indexes (row by row through its five
indexes, 12,000 heartbeats/s, 10 M took 837 s): detached from its parent, its indexes and constraints
dropped (their definitions kept), filled, the same indexes and constraints made again under
the same names (a sort each instead of a b-tree insert per row), vacuumed and analyzed, and
attached again with a CHECK constraint matching its bounds, so that PostgreSQL neither scans
it nor builds an index when attaching (each of the parent's indexes matches the partition's).
The rows, their ids and their physical order are those the earlier loader wrote row by row;
pg_partman's bookkeeping is untouched (the same tables, names and bounds). The indexes are
packed (built by a sort), where ingest's inserts leave them ~60 % larger: docs/performance.md,
"Telemetry at scale: S5". Partitions are filled `jobs` at a time, one connection each; the
loading stops, and says so, when the free disk would fall below `min_free_bytes`.
"""

from __future__ import annotations

import math
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from _common import bench_asset_model, log

METRICS_SQL = (
    "jsonb_build_object('run_hours', round(m.m / 60.0, 4), 'energy_kwh', round(m.m * 0.25, 3), "
    "'pressure_bar', round((7 + random() * 0.3)::numeric, 3), "
    "'temp_c', round((65 + (random() - 0.5) * 6)::numeric, 2))"
)
INCREMENTS_SQL = "jsonb_build_object('run_hours', '0.016667', 'energy_kwh', '0.250000')"
CHUNK_ROWS = 1_000_000  # rows per INSERT statement (progress, a disk check, no giant transaction)
INDEX_BYTES_PER_ROW = 300  # room kept for a partition's indexes (237 B a heartbeat at 1 M)


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


def kept_fleet() -> dict[str, Any]:
    """The fleet `create_fleet` made in a kept cluster (`--data`): its first customer, whose
    assets the rollups went to, and that customer's viewer."""
    from portal.models import Customer, User

    customer = Customer.objects.get(slug="bench-0")
    return {"customer": customer, "user": User.objects.get(customer=customer)}


def newest_heartbeat_age(now: datetime) -> float:
    """Minutes from the newest heartbeat to `now` (0 just after a load)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT max(ts) FROM fleet_heartbeat")
        (newest,) = cursor.fetchone()
    return round((now - newest).total_seconds() / 60, 1) if newest else 0.0


@dataclass
class Target:
    """One leaf partition to fill: its parent, the CHECK that proves its bounds, and the
    INSERTs (each over %(low)s..%(high)s of `units`, ~CHUNK_ROWS rows at a time)."""

    parent: str
    name: str
    check: str
    inserts: list[tuple[str, int, int, dict[str, Any]]]  # sql, first unit, last unit, params
    per_unit: int
    newest_first: bool = False  # fill from the last unit back, so a disk stop spares recent ones
    rows: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    stopped: bool = False


class Disk:
    """Free space under the PostgreSQL data folder; loading stops when it would fall below
    `min_free` (plus room for the indexes of what is loaded but not yet indexed)."""

    def __init__(self, path: str, min_free: int) -> None:
        self.path, self.min_free = path, min_free
        self.low = threading.Event()
        self.lock = threading.Lock()
        self.pending = 0  # rows loaded but not yet indexed, all partitions

    def room(self, adding: int) -> bool:
        with self.lock:
            needed = self.min_free + (self.pending + adding) * INDEX_BYTES_PER_ROW
            if self.low.is_set() or shutil.disk_usage(self.path).free < needed:
                self.low.set()
                return False
            self.pending += adding
            return True

    def indexed(self, rows: int) -> None:
        with self.lock:
            self.pending -= rows


def _definitions(cursor: Any, table: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The constraints (name, definition) and the other indexes (name, CREATE statement) of
    `table`, primary key first."""
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
        "AND contype IN ('p', 'u', 'f') ORDER BY contype <> 'p', contype, conname",
        [table],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = %s::regclass AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid AND c.conrelid = x.indrelid) ORDER BY 1",
        [table],
    )
    return constraints, cursor.fetchall()


def _detach(cursor: Any, target: Target) -> dict[str, Any]:
    """Detach `target` and drop its indexes and constraints; returns what attaches it again."""
    cursor.execute(
        "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c WHERE c.oid = %s::regclass", [target.name]
    )
    (bound,) = cursor.fetchone()
    constraints, indexes = _definitions(cursor, target.name)
    cursor.execute(f"ALTER TABLE {target.parent} DETACH PARTITION {target.name}")
    for name, _definition in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
    for name, _definition in reversed(constraints):  # foreign keys before the keys
        cursor.execute(f'ALTER TABLE {target.name} DROP CONSTRAINT "{name}"')
    return {"bound": bound, "constraints": constraints, "indexes": indexes}


def connect(url: str) -> Any:
    """A connection of the loader's own, quoting parameters as Django's cursors do."""
    import psycopg

    return psycopg.connect(url, autocommit=True, cursor_factory=psycopg.ClientCursor)


def _fill(url: str, target: Target, made: dict[str, Any], disk: Disk) -> None:
    """In a connection of its own (its settings must not reach the measured requests'): the
    rows, then the indexes and constraints, VACUUM (ANALYZE) and the CHECK of the bounds (the
    partition is attached by the caller)."""
    with connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("SET work_mem = '256MB'")  # ORDER BY of a chunk in memory
        cursor.execute("SET maintenance_work_mem = '1GB'")
        started = time.monotonic()
        for sql, first, last, params in target.inserts:
            step = max(1, CHUNK_ROWS // max(target.per_unit, 1))
            chunks = range(first, last + 1, step)
            for low in reversed(chunks) if target.newest_first else chunks:
                if not disk.room(min(step, last + 1 - low) * target.per_unit):
                    target.stopped = True
                    log(f"{target.name}: stopped, free disk below the limit")
                    break
                cursor.execute(sql, {**params, "low": low, "high": min(last, low + step - 1)})
                target.rows += cursor.rowcount
            rate = target.rows / max(time.monotonic() - started, 1e-9)
            log(f"{target.name}: {target.rows:,} rows ({rate:,.0f}/s)")
            if target.stopped:
                break
        target.seconds["fill"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        for name, definition in made["constraints"]:
            cursor.execute(f'ALTER TABLE {target.name} ADD CONSTRAINT "{name}" {definition}')
        for _name, statement in made["indexes"]:
            cursor.execute(statement)
        disk.indexed(target.rows)
        target.seconds["indexes"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        cursor.execute(f"VACUUM (ANALYZE) {target.name}")
        cursor.execute(
            f"ALTER TABLE {target.name} ADD CONSTRAINT {target.name}_bounds CHECK ({target.check})"
        )
        target.seconds["vacuum_analyze"] = round(time.monotonic() - started, 1)
        log(f"{target.name}: indexed and vacuumed ({target.seconds})")


def _load_partitions(url: str, targets: list[Target], jobs: int, disk: Disk) -> float:
    """Detach every target, fill them `jobs` at a time, attach them again; returns seconds."""
    started = time.monotonic()
    with connect(url) as connection, connection.cursor() as cursor:
        made = {t.name: _detach(cursor, t) for t in targets}
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for done in [pool.submit(_fill, url, t, made[t.name], disk) for t in targets]:
            done.result()
    with connect(url) as connection, connection.cursor() as cursor:
        for t in targets:
            attached = time.monotonic()
            cursor.execute(f"ALTER TABLE {t.parent} ATTACH PARTITION {t.name} {made[t.name]['bound']}")
            cursor.execute(f"ALTER TABLE {t.name} DROP CONSTRAINT {t.name}_bounds")
            t.seconds["attach"] = round(time.monotonic() - attached, 2)
    return time.monotonic() - started


def _span(start: datetime, end: datetime, first: datetime, step: timedelta, count: int) -> tuple[int, int]:
    """The units g (bucket first + g·step, 0 ≤ g < count) inside [start, end); empty if low > high."""
    low = max(0, math.ceil((start - first) / step))
    high = min(count - 1, math.ceil((end - first) / step) - 1)
    return low, high


def load(
    customer: Any,
    heartbeats: int,
    assets: int,
    minute_assets: int,
    hour_assets: int,
    hour_days: int,
    *,
    jobs: int = 2,
    min_free_bytes: int = 5 * 2**30,
) -> dict[str, Any]:
    """Heartbeats and rollups by SQL; returns rows and seconds per table. Rollups go to the
    first `minute_assets` / `hour_assets` assets, `customer`'s (the one measured) first. Stops
    loading (and says so) when the free disk would fall below `min_free_bytes`."""
    from django.db import connection

    from fleet import partitions

    now = datetime.now(UTC).replace(second=0, microsecond=0)
    minutes = math.ceil(heartbeats / assets)
    first = now - timedelta(minutes=minutes - 1)
    partitions.maintain()
    result: dict[str, Any] = {
        "heartbeat_minutes": minutes,
        "first_heartbeat": first.isoformat(),
        "jobs": jobs,
    }
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval('fleet_heartbeat_id_seq'), current_setting('data_directory')")
        first_id, data_directory = cursor.fetchone()
    # The measured customer's devices first (numbered `n`), so the rollups go to its assets.
    devices = (
        "(SELECT d.id, d.asset_id, d.customer_id, row_number() OVER "
        "(ORDER BY d.customer_id <> %(customer)s, d.asset_id) AS n FROM fleet_device d) d"
    )
    # Ids as the parent's sequence gave them when these rows were inserted in this order.
    heartbeat = (
        "INSERT INTO {table} (id, customer_id, asset_id, device_id, seq, ts, received_at, status, "  # noqa: S608
        "fault_code, metrics, increments) "
        "SELECT %(first_id)s + m.m * %(assets)s + d.n - 1, d.customer_id, d.asset_id, d.id, m.m, ts.ts, "
        f"ts.ts + interval '2 seconds', 'ok', '', {METRICS_SQL}, {INCREMENTS_SQL} "
        "FROM generate_series(%(low)s, %(high)s) AS m(m) "
        "CROSS JOIN LATERAL (SELECT %(first)s::timestamptz + make_interval(mins => m.m) AS ts) ts "
        f"CROSS JOIN {devices} ORDER BY m.m, d.n"
    )
    rollup = (
        "INSERT INTO {table} (id, customer_id, asset_id, metric, resolution, bucket, count, "  # noqa: S608
        "total, minimum, maximum) SELECT nextval('fleet_telemetryrollup_id_seq'), d.customer_id, "
        "d.asset_id, 'temp_c', '{res}', b.b, {count}, {count} * v.mean, v.mean - 2, v.mean + 2 "
        "FROM generate_series(%(low)s, %(high)s) AS g(g) "
        "CROSS JOIN LATERAL (SELECT %(first)s::timestamptz + make_interval({unit} => g.g) AS b) b "
        f"CROSS JOIN {devices} "
        "CROSS JOIN LATERAL (SELECT 65 + (random() - 0.5) * 6 + 0 * g.g AS mean) v "
        "WHERE d.n <= {limit} ORDER BY g.g, d.n"
    )
    common = {"customer": customer.pk, "first": first, "assets": assets, "first_id": first_id}
    minute = timedelta(minutes=1)
    targets = []
    for name, start, end in partitions.partitions(partitions.RAW):
        low, high = _span(start, end, first, minute, minutes)
        if low <= high:
            check = f"ts >= '{start.isoformat()}' AND ts < '{end.isoformat()}'"
            sql = heartbeat.format(table=name)
            targets.append(Target("fleet_heartbeat", name, check, [(sql, low, high, common)], assets))
    for name, start, end in partitions.partitions(partitions.MINUTE):
        low, high = _span(start, end, first, minute, minutes)
        if low <= high and minute_assets:
            check = (
                f"resolution = 'minute' AND bucket >= '{start.isoformat()}' AND bucket < '{end.isoformat()}'"
            )
            sql = rollup.format(table=name, res="minute", count=1, unit="mins", limit=minute_assets)
            targets.append(
                Target(partitions.MINUTE.parent, name, check, [(sql, low, high, common)], minute_assets)
            )
    if hour_assets and hour_days:
        since = now.replace(minute=0) - timedelta(days=hour_days)
        coarse = [
            (
                rollup.format(table="{table}", res=res, count=count, unit=unit, limit=hour_assets),
                buckets,
                start,
            )
            # Days first (24 times fewer rows), then hours from the newest back: if the disk
            # runs short, what is missing is the oldest hours, which the charts read last.
            for res, unit, count, buckets, start in (
                ("day", "days", 1440, hour_days, since.replace(hour=0)),
                ("hour", "hours", 60, hour_days * 24, since),
            )
        ]
        name = "fleet_telemetryrollup_coarse"
        inserts = [(sql.format(table=name), 0, n - 1, {**common, "first": start}) for sql, n, start in coarse]
        targets.append(
            Target("fleet_telemetryrollup", name, "resolution IN ('hour', 'day')", inserts, hour_assets, True)
        )
    disk = Disk(data_directory, min_free_bytes)
    seconds = _load_partitions(os.environ["DATABASE_URL"], targets, jobs, disk)
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval('fleet_heartbeat_id_seq', (SELECT max(id) FROM fleet_heartbeat))")
        started = time.monotonic()
        for table in ("fleet_heartbeat", "fleet_telemetryrollup"):  # the parents; leaves were done
            cursor.execute(f"ANALYZE {table}")
        result["analyze_parents_seconds"] = round(time.monotonic() - started, 1)
        cursor.execute("SELECT resolution, count(*) FROM fleet_telemetryrollup_coarse GROUP BY 1")
        coarse_rows = dict(cursor.fetchall())
    for kind, parent in (
        ("heartbeats", "fleet_heartbeat"),
        ("minute_rollups", partitions.MINUTE.parent),
        ("coarse_rollups", "fleet_telemetryrollup"),
    ):
        mine = [t for t in targets if t.parent == parent]
        result[kind] = {
            "rows": sum(t.rows for t in mine),
            "partitions": {t.name: {"rows": t.rows, **t.seconds} for t in mine},
        }
    result["minute_rollups"]["assets"] = minute_assets
    result["coarse_rollups"].update(assets=hour_assets, days=hour_days, by_resolution=coarse_rows)
    result["seconds"] = round(seconds, 1)
    result["stopped_for_disk"] = disk.low.is_set()
    return result
