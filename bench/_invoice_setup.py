"""Create the S4 billing data set in the benchmark's database; print a summary as JSON.

    DJANGO_SETTINGS_MODULE=portal.settings.production DATABASE_URL=... \\
        python bench/_invoice_setup.py --contracts 10000 --customers 100 --period 2026-10

bench/invoice_run.py runs this in a subprocess against its throwaway PostgreSQL (after
`migrate`). Django rows (customers, sites, the asset model, the plan, assets, contracts,
coverages, status history) are bulk-created with the ORM; the hourly usage — about
contracts × 745 hours × 2 meters rows — is generated inside PostgreSQL with INSERT … SELECT
over generate_series, one local day at a time in hour-major order (the order the ingest
worker writes it in: every asset's hour before the next hour), with the table's secondary
indexes dropped during the load and rebuilt afterwards, then VACUUM ANALYZE.

Deterministic: contract n belongs to customer n mod customers, customers take the time
zones of ZONES in turn, quantities are a hash of (asset number, hour). stdout is one JSON
object; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django

django.setup()

from django.db import connection, transaction  # noqa: E402

from billing.metering import local_midnight, period_of  # noqa: E402
from billing.models import Contract, ContractAsset, ContractStatus, Plan, PriceComponent  # noqa: E402
from fleet.models import (  # noqa: E402
    Asset,
    AssetModel,
    AssetStatus,
    AssetStatusChange,
    MetricDefinition,
    MetricKind,
    Site,
)
from portal.models import Customer  # noqa: E402

# Customers take these in turn: Berlin leaves summer time on 2026-10-25 (a 745-hour October),
# Sydney enters it on 2026-10-04 (743 hours), New York and Tokyo sit far from UTC.
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Australia/Sydney")
TAX_RATES = (Decimal("0.1900"), Decimal("0.2000"), Decimal("0.0000"), Decimal("0.1000"), Decimal("0.0770"))
CREDITS = [{"below": "99.5", "credit_percent": "5"}, {"below": "99", "credit_percent": "10"}]
SLA_FIRST_RESPONSE = {"P1": 60, "P2": 240, "P3": 1440, "P4": 2880}
SLA_RESOLUTION = {"P1": 480, "P2": 1440, "P3": 4320, "P4": 10080}
MARGIN_HOURS = 2  # usage rows just outside each customer's month, which the run must leave out
METRICS = ("run_hours", "energy_kwh")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] setup: {message}", file=sys.stderr, flush=True)


def contract_dates(n: int, period_first: date) -> tuple[date, date | None, str]:
    """(start, end, status) of contract n: most run all year; 1 in 10 starts inside the month
    (prorated), 1 in 50 ends inside it."""
    if n % 10 == 7:
        return period_first + timedelta(days=1 + n % 27), None, ContractStatus.ACTIVE
    if n % 50 == 1:
        return date(period_first.year, 1, 1), period_first + timedelta(days=19), ContractStatus.ENDED
    return date(period_first.year, 1, 1), None, ContractStatus.ACTIVE


def offline_intervals(n: int, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """Offline intervals of asset n inside [start, end): about 1 asset in 7 has one to three,
    of 20 minutes to 9 hours (so some cross the 99.5 % and 99 % credit thresholds); 1 in 100
    is offline across the month's start."""
    rng = random.Random(n)
    intervals = []
    if n % 100 == 13:
        intervals.append((start - timedelta(hours=5), start + timedelta(hours=rng.randint(1, 6))))
    if n % 7 == 3:
        hours = (end - start).total_seconds() / 3600
        for _ in range(rng.randint(1, 3)):
            began = start + timedelta(hours=rng.uniform(12, hours - 24))
            intervals.append((began, began + timedelta(minutes=rng.randint(20, 540))))
    intervals.sort()
    merged: list[tuple[datetime, datetime]] = []
    for began, ended in intervals:
        if merged and began <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], ended))
        else:
            merged.append((began, ended))
    return merged


def create_rows(contracts: int, customers: int, period_label: str) -> dict[str, Any]:
    """Everything but the usage, through the ORM's bulk_create."""
    utc_period = period_of(period_label, "UTC")
    model = AssetModel.objects.create(code="bench-compressor", name="Bench compressor")
    MetricDefinition.objects.bulk_create(
        [
            MetricDefinition(asset_model=model, code="run_hours", label="Run hours", unit="h",
                             kind=MetricKind.COUNTER),
            MetricDefinition(asset_model=model, code="energy_kwh", label="Energy", unit="kWh",
                             kind=MetricKind.COUNTER),
            MetricDefinition(asset_model=model, code="pressure_bar", label="Pressure", unit="bar"),
        ]
    )  # fmt: skip
    plan = Plan.objects.create(
        code="bench-flex", name="Bench flex", currency="EUR", period_fee=Decimal("250.00")
    )
    PriceComponent.objects.bulk_create(
        [
            PriceComponent(plan=plan, metric="run_hours", label="Run hours", unit="h",
                           charge_model="per_unit", unit_price=Decimal("0.50")),
            PriceComponent(plan=plan, metric="energy_kwh", label="Energy", unit="kWh",
                           charge_model="graduated", included_units=Decimal("500"),
                           tiers=[{"up_to": "5000", "unit_price": "0.20", "flat_fee": "0"},
                                  {"up_to": "15000", "unit_price": "0.15", "flat_fee": "25"},
                                  {"up_to": None, "unit_price": "0.12", "flat_fee": "0"}]),
        ]
    )  # fmt: skip
    customer_rows = Customer.objects.bulk_create(
        [
            Customer(
                name=f"Bench customer {i:03d}",
                slug=f"bench-customer-{i:03d}",
                currency="EUR",
                time_zone=ZONES[i % len(ZONES)],
                tax_rate=TAX_RATES[i % len(TAX_RATES)],
            )
            for i in range(customers)
        ]
    )
    sites = Site.objects.bulk_create([Site(customer=c, name="Main plant") for c in customer_rows])
    log(f"{customers} customers and sites, the asset model and the plan")

    assets = Asset.objects.bulk_create(
        [
            Asset(
                customer=customer_rows[n % customers],
                site=sites[n % customers],
                model=model,
                serial_number=f"S4-A{n:06d}",
                name=f"Compressor {n}",
                status=AssetStatus.ONLINE,
            )
            for n in range(contracts)
        ],
        batch_size=2000,
    )
    contract_rows = []
    for n in range(contracts):
        start, end, status = contract_dates(n, utc_period.first_day)
        contract_rows.append(
            Contract(
                customer=customer_rows[n % customers],
                plan=plan,
                number=f"S4-C{n:06d}",
                start_date=start,
                end_date=end,
                status=status,
                first_response_minutes=SLA_FIRST_RESPONSE,
                resolution_minutes=SLA_RESOLUTION,
                uptime_target=Decimal("99.5"),
                service_credits=CREDITS,
            )
        )
    Contract.objects.bulk_create(contract_rows, batch_size=2000)
    coverages = []
    for n, (contract, asset) in enumerate(zip(contract_rows, assets, strict=True)):
        zone = customer_rows[n % customers].time_zone
        until = local_midnight(contract.end_date + timedelta(days=1), zone) if contract.end_date else None
        coverages.append(
            ContractAsset(
                contract=contract,
                asset=asset,
                covered_from=local_midnight(contract.start_date, zone),
                covered_until=until,
            )
        )
    ContractAsset.objects.bulk_create(coverages, batch_size=2000)
    log(f"{contracts} assets, contracts and coverages")

    changes = []
    commissioned = datetime(utc_period.first_day.year, 1, 1, tzinfo=UTC)
    for n, asset in enumerate(assets):
        changes.append(
            AssetStatusChange(
                customer_id=asset.customer_id,
                asset=asset,
                status=AssetStatus.ONLINE,
                previous=AssetStatus.NEVER_SEEN,
                at=commissioned,
            )
        )
        period = period_of(period_label, customer_rows[n % customers].time_zone)
        for began, ended in offline_intervals(n, period.start, period.end):
            for at, status, previous in (
                (began, AssetStatus.OFFLINE, AssetStatus.ONLINE),
                (ended, AssetStatus.ONLINE, AssetStatus.OFFLINE),
            ):
                changes.append(
                    AssetStatusChange(
                        customer_id=asset.customer_id, asset=asset, status=status, previous=previous, at=at
                    )
                )
    AssetStatusChange.objects.bulk_create(changes, batch_size=5000)
    offline_assets = sum(1 for n in range(contracts) if n % 7 == 3 or n % 100 == 13)
    log(f"{len(changes)} status changes ({offline_assets} assets with offline time)")
    return {
        "customers": customers,
        "time_zones": list(ZONES),
        "assets": contracts,
        "contracts": contracts,
        "contracts_prorated_start": sum(1 for n in range(contracts) if n % 10 == 7),
        "contracts_ended_in_month": sum(1 for n in range(contracts) if n % 50 == 1),
        "status_changes": len(changes),
        "assets_with_offline_time": offline_assets,
    }


# Quantities: a hash of (asset number, hour) spread over [0, 1] for run_hours, and energy
# that follows it; six decimals like the column.
FRACTION = (
    "((hashint8(a.n::bigint * 1000003 + (extract(epoch FROM h.hour)::bigint / 3600)) & 1048575)::numeric"
    " / 1048575)"
)
USAGE_INSERT = f"""
INSERT INTO fleet_hourlyusage (customer_id, asset_id, metric, hour, quantity, updated_at)
SELECT a.customer_id, a.asset_id, m.metric, h.hour,
       round(CASE m.metric WHEN 'run_hours' THEN {FRACTION} ELSE {FRACTION} * 55.5 + 1.25 END, 6),
       now()
FROM generate_series(%(low)s::timestamptz, %(high)s::timestamptz - interval '1 hour',
                     interval '1 hour' * %(every)s)
     AS h(hour)
JOIN bench_s4_assets a ON h.hour >= a.first_hour AND h.hour < a.end_hour
CROSS JOIN (VALUES ('run_hours'), ('energy_kwh')) AS m(metric)
ORDER BY h.hour, a.n, m.metric
"""  # noqa: S608 - constant text


def load_usage(contracts: int, customers: int, period_label: str, every: int = 1) -> dict[str, Any]:
    """The hourly usage of every asset over its customer's month plus MARGIN_HOURS each side:
    every hour, or every `every`-th hour (a divisor of 24) to keep a large data set small."""
    started = time.monotonic()
    margin = timedelta(hours=MARGIN_HOURS)
    zone_of = {c.pk: c.time_zone for c in Customer.objects.all()}
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE UNLOGGED TABLE bench_s4_assets (n int, asset_id uuid, customer_id uuid,"
            " first_hour timestamptz, end_hour timestamptz)"
        )
        rows = []
        for asset_id, customer_id, serial in Asset.objects.values_list("pk", "customer_id", "serial_number"):
            period = period_of(period_label, zone_of[customer_id])
            rows.append(
                (
                    int(serial.removeprefix("S4-A")),
                    asset_id,
                    customer_id,
                    period.start - margin,
                    period.end + margin,
                )
            )
        cursor.executemany("INSERT INTO bench_s4_assets VALUES (%s, %s, %s, %s, %s)", rows)
        cursor.execute("CREATE INDEX ON bench_s4_assets (first_hour, end_hour)")
        cursor.execute("ANALYZE bench_s4_assets")

        # Secondary indexes and the unique constraint go during the load (rebuilt below), and
        # foreign-key triggers are skipped (the rows are consistent by construction).
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = 'fleet_hourlyusage'::regclass AND contype = 'u'"
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = 'fleet_hourlyusage'"
            " AND i.indexname NOT IN (SELECT conname FROM pg_constraint"
            "   WHERE conrelid = 'fleet_hourlyusage'::regclass AND contype IN ('p', 'u'))"
        )
        indexes = cursor.fetchall()
        for name, _definition in constraints:
            cursor.execute(f'ALTER TABLE fleet_hourlyusage DROP CONSTRAINT "{name}"')
        for name, _definition in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("SET session_replication_role = replica")

        low = min(r[3] for r in rows)
        high = max(r[4] for r in rows)
        inserted = 0
        day = low
        while day < high:
            following = min(day + timedelta(days=1), high)
            with transaction.atomic():
                cursor.execute(USAGE_INSERT, {"low": day, "high": following, "every": every})
                inserted += cursor.rowcount
            day = following
            log(f"usage: {inserted:,} rows ({time.monotonic() - started:.0f}s)")
        cursor.execute("SET session_replication_role = origin")

        index_started = time.monotonic()
        cursor.execute("SET maintenance_work_mem = '1GB'")
        for name, definition in constraints:
            cursor.execute(f'ALTER TABLE fleet_hourlyusage ADD CONSTRAINT "{name}" {definition}')
        for _name, definition in indexes:
            cursor.execute(definition)
        log(f"usage: indexes rebuilt in {time.monotonic() - index_started:.0f}s; VACUUM ANALYZE")
        cursor.execute("DROP TABLE bench_s4_assets")
        for table in ("fleet_hourlyusage", "fleet_assetstatuschange", "fleet_asset", "billing_contract",
                      "billing_contractasset", "portal_customer"):  # fmt: skip
            cursor.execute(f"VACUUM (ANALYZE) {table}")
        cursor.execute("CHECKPOINT")
        cursor.execute(
            "SELECT pg_total_relation_size('fleet_hourlyusage'), pg_relation_size('fleet_hourlyusage')"
        )
        total_size, heap_size = cursor.fetchone() or (0, 0)
    seconds = time.monotonic() - started
    log(f"usage: {inserted:,} rows in {seconds:.0f}s")
    return {
        "usage_rows": inserted,
        "usage_hours_per_asset": inserted // max(contracts, 1) // len(METRICS),
        "usage_every_hours": every,
        "usage_load_seconds": round(seconds, 1),
        "usage_table_mb": round(heap_size / 2**20),
        "usage_table_with_indexes_mb": round(total_size / 2**20),
        "usage_indexes": [name for name, _ in constraints + indexes],
    }


def billed_usage_rows(period_label: str) -> int:
    """Usage rows inside the billed windows (the customer's month and the coverage): what the
    run reads and sums. Computed by one SQL query, independently of billing.metering."""
    first = period_of(period_label, "UTC").first_day
    following = first + timedelta(days=32)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FROM billing_contract k
            JOIN portal_customer c ON c.id = k.customer_id
            JOIN billing_contractasset ca ON ca.contract_id = k.id
            JOIN fleet_hourlyusage u ON u.asset_id = ca.asset_id
            WHERE u.hour >= greatest(ca.covered_from, (%s::timestamp AT TIME ZONE c.time_zone))
              AND u.hour < least(coalesce(ca.covered_until, 'infinity'),
                                 (%s::timestamp AT TIME ZONE c.time_zone))
            """,
            [
                datetime.combine(first, datetime.min.time()),
                datetime.combine(following.replace(day=1), datetime.min.time()),
            ],
        )
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--contracts", type=int, required=True)
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--period", default="2026-10")
    parser.add_argument("--usage-every", type=int, default=1, choices=[1, 2, 3, 4, 6, 8, 12, 24])
    args = parser.parse_args()
    started = time.monotonic()
    with transaction.atomic():
        summary = create_rows(args.contracts, args.customers, args.period)
    summary.update(load_usage(args.contracts, args.customers, args.period, args.usage_every))
    summary["usage_rows_billed"] = billed_usage_rows(args.period)
    summary["setup_seconds"] = round(time.monotonic() - started, 1)
    summary["created_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    json.dump(summary, sys.stdout)


if __name__ == "__main__":
    main()
