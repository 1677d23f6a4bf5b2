"""Billing benchmark S4: the invoice run over 10,000 contracts and a month of hourly usage.

    .venv/bin/python bench/invoice_run.py [--quick] [--contracts N] [--small N] [--customers N]
                                          [--period YYYY-MM] [--lock PATH] [--keep-logs]

Starts its own PostgreSQL and Redis (tests/services.py), migrates, and creates the data set
(bench/_invoice_setup.py, not timed): 100 customers in five time zones (UTC, Berlin and
Sydney — both change clocks in October 2026 —, New York, Tokyo), one asset model with the
run_hours and energy_kwh counters, one plan (period fee, per_unit run hours, graduated
energy with included units), 10,000 assets and 10,000 contracts with one asset each (1 in 10
starts inside the month, 1 in 50 ends inside it), a status history with offline intervals
for about 1 asset in 7 (so uptime and service credits are computed), and a month of hourly
usage for both meters: ~15 M rows of fleet_hourlyusage generated inside PostgreSQL.

Then, each in a separate process (bench/_invoice_child.py, under `flock` on --lock so it
never overlaps another benchmark on the machine) running `billing.runs.invoice_run_execute`
for the period with portal.settings.production:

1. the same data billed for only --small contracts (the others set to draft, so not
   billable), to show that peak memory does not grow with the number of contracts; its
   invoices are deleted and the contracts restored afterwards;
2. the full run: every contract, all invoices new;
3. the re-run: drafts recomputed, nothing created.

For each: wall time, CPU of the run's process and of PostgreSQL, peak RSS (ru_maxrss of the
run's process), invoices created/updated, usage rows billed, contracts/s, and where the time
went (the run's phases and SQL, from the child). Then it checks that there are exactly as
many invoices as contracts, and re-computes the usage quantities, the per-unit amount and
the uptime of a few invoices with its own SQL (independently of billing.metering). Last, an
EXPLAIN (ANALYZE, BUFFERS) of one chunk's metering query. Prints one JSON object on stdout;
progress goes to stderr. Everything it starts is stopped on the way out, Ctrl-C and SIGTERM
included.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from functools import partial
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    ROOT,
    VENV_BIN,
    Process,
    Stack,
    cpu_seconds,
    idle_load_average,
    log,
    machine_cpu,
    machine_info,
    migrate,
    peak_rss,
    run_main,
    services,
    wait_for_log,
)

from portal.formatting import round_quantity

LOCK_FILE = "/tmp/fleetport-bench.lock"  # noqa: S108 - the machine-wide benchmark lock
TARGETS = {
    "wall_seconds_max": 60.0,
    # Peak RSS of the full run over that of the small run: 5× the contracts, same per-contract
    # data. A list of usage rows per contract would grow it by ~1 GB; chunked sums do not.
    "peak_rss_ratio_full_over_small_max": 1.10,
}
SPOT_CHECK_EXAMPLES = 4  # spot-checked invoices shown in full in the JSON (failures always are)


def with_lock(lock: str, argv: list[str]) -> list[str]:
    return ["flock", lock, *argv] if lock else argv


def run_json(argv: list[str], env: dict[str, str], what: str) -> dict[str, Any]:
    """Run a child that prints one JSON object; its stderr passes through as progress."""
    completed = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=False)  # noqa: S603
    if completed.returncode != 0:
        raise RuntimeError(f"{what} failed with status {completed.returncode}")
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def start_workers(stack: Stack, name: str, workers: int) -> list[Process]:
    """`workers` Celery workers (prefork, one pool process each), as two nodes would run them;
    started afresh for each measured run so that their peak RSS is that run's."""
    started = [
        stack.start(
            f"{name}-worker-{n}",
            [
                *(
                    str(VENV_BIN / "celery"),
                    "-A",
                    "portal",
                    "worker",
                    "--pool",
                    "prefork",
                    "--concurrency",
                    "1",
                ),
                *("--queues", "default", "--hostname", f"{name}-{n}@%h", "--loglevel", "INFO"),
                *("--without-gossip", "--without-mingle"),
            ],
        )
        for n in range(workers)
    ]
    for process in started:
        wait_for_log(process, "ready.")
    return started


def timed_run(
    conn: psycopg.Connection[Any],
    env: dict[str, str],
    name: str,
    *,
    period: str,
    lock: str,
    postmaster: int,
    stack: Stack,
    workers: int,
) -> dict[str, Any]:
    """Create an InvoiceRun row and execute it in a child process, or (`workers` > 0) have the
    child queue it to that many Celery workers and wait for it; the child's own figures (or
    the workers' CPU and peak RSS) plus PostgreSQL's CPU and the machine's over the same time."""
    pool = start_workers(stack, name, workers) if workers else []
    run_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO billing_invoicerun (id, period, status, total, processed, created_count,"
        " updated_count, skipped_count, error, created_at)"
        " VALUES (%s, %s, 'queued', 0, 0, 0, 0, 0, '', now())",
        (run_id, period),
    )
    billable = conn.execute(
        "SELECT count(*) FROM billing_contract WHERE status IN ('active', 'ended')"
    ).fetchone()
    count = billable[0] if billable else "?"
    log(f"{name}: invoice run over {count} contracts (waiting for {lock or 'no lock'})")
    postgres_before = cpu_seconds(postmaster)
    workers_before = sum(cpu_seconds(process.pid) for process in pool)
    machine_before = machine_cpu()
    argv = [str(VENV_BIN / "python"), "bench/_invoice_child.py", run_id, *(["--via-workers"] if pool else [])]
    child = run_json(with_lock(lock, argv), env, f"{name} run")
    postgres_cpu = cpu_seconds(postmaster) - postgres_before
    busy, total = machine_cpu()
    busy -= machine_before[0]
    elapsed = total - machine_before[1]
    if pool:
        child["cpu_seconds"] = round(sum(cpu_seconds(process.pid) for process in pool) - workers_before, 2)
        peaks = [peak_rss(process.pid) for process in pool]
        # The pool processes bill; each worker's main process only fetches the messages, and
        # holds about as much as a pool process that frees each chunk (so the highest of all
        # processes would hide a pool process's growth below it): the figure is the pool's.
        child["peak_rss_mb"] = max(
            entry["peak_rss_mb"]
            for process, peak in zip(pool, peaks, strict=True)
            for entry in peak["processes"]
            if entry["pid"] != process.pid
        )
        child["peak_rss_mb_any_process"] = max(peak["max_process_mb"] for peak in peaks)
        child["workers_peak_rss"] = peaks
        for process in pool:
            process.stop()
    if child["status"] != "done":
        raise RuntimeError(f"{name}: the run ended {child['status']}: {child['error']}")
    wall = child["wall_seconds"]
    log(
        f"{name}: {child['processed']} contracts in {wall:.1f}s, created {child['created']}, "
        f"updated {child['updated']}, peak RSS {child['peak_rss_mb']} MB; CPU s: run {child['cpu_seconds']}, "
        f"PostgreSQL {postgres_cpu:.1f}; machine busy {busy / elapsed if elapsed else 0:.0%}"
    )
    for phase, figures in child.get("phases", {}).items():
        log(f"{name}:   {figures['seconds']:7.2f}s  {phase} ({figures['calls']} calls)")
    if "sql" in child:
        log(f"{name}:   {child['sql']['seconds']:7.2f}s  in {child['sql']['statements']} SQL statements")
    for worker, figures in child.get("chunks_by_worker", {}).items():
        log(f"{name}:   {figures['chunks']:4d} chunks, {figures['contracts']} contracts by {worker}")
    # Without the wait for the lock: CPU seconds of the whole child process (incl. start-up)
    # are close to the run's own because the set-up before the clock is ~1 s.
    return {
        **child,
        "contracts_per_s": round(child["processed"] / wall, 1) if wall else None,
        "postgres_cpu_seconds": round(postgres_cpu, 2),
        "machine_busy_seconds_during_child": round(busy, 2),
        "machine_busy_fraction_during_child": round(busy / elapsed, 3) if elapsed else None,
    }


def spot_checks(conn: psycopg.Connection[Any], period: str, now: datetime) -> list[dict[str, Any]]:
    """Invoices re-computed with this script's own SQL: usage per meter (the sum of the hourly
    rows inside the customer's month and the coverage), the per-unit run-hours amount, and the
    uptime (from the raw status history). One invoice of each kind of contract: per time zone,
    starting inside the month or not, ending inside it or not, with offline time or not."""
    year, month = (int(part) for part in period.split("-"))
    first = datetime(year, month, 1)  # noqa: DTZ001 - a local wall time, given a zone in SQL
    following = (first + timedelta(days=32)).replace(day=1)
    picks = conn.execute(
        """
        SELECT DISTINCT ON (c.time_zone, (k.start_date > %(first)s::date), (k.end_date IS NOT NULL),
                            EXISTS (SELECT 1 FROM fleet_assetstatuschange s
                                    WHERE s.asset_id = ca.asset_id AND s.status = 'offline'))
               i.id, k.number, c.time_zone, ca.asset_id, ca.covered_from, ca.covered_until,
               (%(first)s::timestamp AT TIME ZONE c.time_zone),
               (%(following)s::timestamp AT TIME ZONE c.time_zone), i.uptime
        FROM billing_invoice i
        JOIN billing_contract k ON k.id = i.contract_id
        JOIN portal_customer c ON c.id = k.customer_id
        JOIN billing_contractasset ca ON ca.contract_id = k.id
        WHERE i.period = %(period)s AND i.status <> 'void'
        ORDER BY c.time_zone, (k.start_date > %(first)s::date), (k.end_date IS NOT NULL),
                 EXISTS (SELECT 1 FROM fleet_assetstatuschange s
                         WHERE s.asset_id = ca.asset_id AND s.status = 'offline'), k.number
        """,
        {"first": first, "following": following, "period": period},
    ).fetchall()
    units: dict[str, str] = dict(
        conn.execute("SELECT DISTINCT metric, unit FROM billing_pricecomponent").fetchall()
    )
    results = []
    for invoice_id, number, zone, asset_id, covered_from, covered_until, start, end, uptime in picks:
        window_start = max(covered_from, start)
        window_end = min(covered_until or end, end)
        expected: dict[str, Decimal] = dict(
            conn.execute(
                "SELECT metric, sum(quantity) FROM fleet_hourlyusage WHERE asset_id = %s"
                " AND hour >= %s AND hour < %s GROUP BY metric",
                (asset_id, window_start, window_end),
            ).fetchall()
        )
        lines = {
            metric: (quantity, amount)
            for metric, quantity, amount in conn.execute(
                "SELECT metric, quantity, amount FROM billing_invoiceline"
                " WHERE invoice_id = %s AND kind = 'usage'",
                (invoice_id,),
            ).fetchall()
        }
        billed = {metric: quantity for metric, (quantity, _) in lines.items()}
        # An invoice bills each metered quantity at its unit's precision, half up
        # (docs/billing.md, "Rating a period"): the SQL sums are rounded by that rule.
        expected = {metric: round_quantity(total, units.get(metric)) for metric, total in expected.items()}
        per_unit = (expected.get("run_hours", Decimal(0)) * Decimal("0.50")).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )
        expected_uptime = independent_uptime(conn, asset_id, window_start, min(window_end, now))
        ok = (
            bool(expected)
            and billed == expected
            and lines["run_hours"][1] == per_unit
            and (uptime == expected_uptime)
        )
        results.append(
            {
                "invoice_contract": number,
                "time_zone": zone,
                "window_utc": [
                    window_start.astimezone(UTC).isoformat(),
                    window_end.astimezone(UTC).isoformat(),
                ],
                "sql_quantities": {m: str(q) for m, q in sorted(expected.items())},
                "invoice_quantities": {m: str(q) for m, q in sorted(billed.items())},
                "run_hours_amount": {"sql": str(per_unit), "invoice": str(lines["run_hours"][1])},
                "uptime": {"sql": str(expected_uptime), "invoice": str(uptime)},
                "ok": ok,
            }
        )
    return results


def independent_uptime(
    conn: psycopg.Connection[Any], asset_id: Any, start: datetime, end: datetime
) -> Decimal | None:
    """Uptime % of one asset over [start, end) from its raw status history, truncated to 4 places."""
    if end <= start:
        return None
    rows = conn.execute(
        "SELECT status, at FROM fleet_assetstatuschange WHERE asset_id = %s AND at < %s ORDER BY at",
        (asset_id, end),
    ).fetchall()
    down, offline_since = timedelta(0), None
    for status, at in rows:
        if status == "offline" and offline_since is None:
            offline_since = at
        elif status != "offline" and offline_since is not None:
            down += max(min(at, end) - max(offline_since, start), timedelta(0))
            offline_since = None
    if offline_since is not None:
        down += max(end - max(offline_since, start), timedelta(0))
    total = Decimal(int((end - start).total_seconds()))
    lost = Decimal(int(down.total_seconds()))
    return (100 * (total - lost) / total).quantize(Decimal("0.0001"), rounding=ROUND_DOWN)


def invoice_counts(conn: psycopg.Connection[Any], period: str) -> dict[str, int]:
    row = conn.execute(
        "SELECT count(*), count(DISTINCT contract_id), count(*) FILTER (WHERE status = 'draft'),"
        " (SELECT count(*) FROM billing_invoiceline l JOIN billing_invoice j ON j.id = l.invoice_id"
        "  WHERE j.period = %s) FROM billing_invoice WHERE period = %s",
        (period, period),
    ).fetchone()
    assert row is not None
    return {"invoices": row[0], "contracts_invoiced": row[1], "drafts": row[2], "lines": row[3]}


def restrict_to(conn: psycopg.Connection[Any], small: int) -> None:
    """Only contracts S4-C000000 … S4-C<small-1> billable (the others draft): every customer
    and time zone keeps a share, and each contract keeps its own asset and usage."""
    conn.execute("UPDATE billing_contract SET status = 'draft' WHERE substr(number, 5)::int >= %s", (small,))


def restore_all(conn: psycopg.Connection[Any], period: str) -> None:
    """Delete the small run's invoices and make every contract billable again, as set up."""
    with conn.transaction():
        conn.execute(
            "DELETE FROM billing_invoiceline WHERE invoice_id IN"
            " (SELECT id FROM billing_invoice WHERE period = %s)",
            (period,),
        )
        conn.execute("DELETE FROM billing_invoice WHERE period = %s", (period,))
        conn.execute(
            "UPDATE billing_contract SET status = CASE WHEN end_date IS NULL THEN 'active' ELSE 'ended' END"
        )
    for table in ("billing_invoiceline", "billing_invoice", "billing_contract"):
        conn.execute(f"VACUUM (ANALYZE) {table}")


def explain_metering(env: dict[str, str], period: str) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the metering query for one chunk's contracts of one zone."""
    code = (
        "import sys; sys.path.insert(0, '.'); import django; django.setup()\n"
        "from django.db import connection\n"
        "from billing import invoicing, metering\n"
        "chunk = next(invoicing.contract_chunks(sys.argv[1]))\n"
        "zone = chunk[0].customer.time_zone\n"
        "ids = [c.pk for c in chunk if c.customer.time_zone == zone]\n"
        "period = metering.period_of(sys.argv[1], zone)\n"
        "qs = (metering.covered_hours(ids, period).values('asset__coverages__contract_id', 'metric')\n"
        "      .annotate(quantity=metering.Sum('quantity')).order_by())\n"
        "sql, params = qs.query.sql_with_params()\n"
        "with connection.cursor() as cursor:\n"
        "    cursor.execute('EXPLAIN (ANALYZE, BUFFERS) ' + sql, params)\n"
        "    print(f'-- {len(ids)} contracts of {zone}')\n"
        "    print('\\n'.join(row[0] for row in cursor.fetchall()))\n"
    )
    completed = subprocess.run(  # noqa: S603
        [str(VENV_BIN / "python"), "-c", code, period], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if completed.returncode != 0:
        return [f"EXPLAIN failed: {completed.stderr[-2000:]}"]
    # The contract ids of the ANY(...) condition would make a line of ~20,000 characters.
    return [line if len(line) <= 240 else line[:240] + " …" for line in completed.stdout.splitlines()]


def run(config: argparse.Namespace) -> dict[str, Any]:
    load_average = idle_load_average()
    with services("fleetport-bench-s4-", keep_logs=config.keep_logs) as stack:
        folder, postgres, redis = stack.folder, stack.postgres, stack.redis
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "portal.settings.production",
            "SECRET_KEY": secrets.token_urlsafe(64),
            "ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_URL": postgres.url,
            "REDIS_URL": redis.url,
            "FLEETPORT_VAR_DIR": str(folder / "var"),
            "PYTHONUNBUFFERED": "1",
        }
        python = str(VENV_BIN / "python")
        stack.env = env  # the workers' (bench/invoice_run.py starts them per run)
        migrate(env)
        log(f"set-up: {config.contracts} contracts (waiting for {config.lock or 'no lock'})")
        setup = run_json(
            with_lock(
                config.lock,
                [
                    python,
                    "bench/_invoice_setup.py",
                    *("--contracts", str(config.contracts), "--customers", str(config.customers)),
                    *("--period", config.period, "--usage-every", str(config.usage_every)),
                ],
            ),
            env,
            "set-up",
        )
        postmaster = stack.postmaster_pid()
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            settings: dict[str, str] = dict(
                conn.execute(
                    "SELECT name, setting || coalesce(unit, '') FROM pg_settings WHERE name IN"
                    " ('shared_buffers', 'work_mem', 'effective_cache_size', 'jit', 'server_version',"
                    " 'max_parallel_workers_per_gather')"
                ).fetchall()
            )
            measure = partial(
                timed_run,
                conn,
                env,
                period=config.period,
                lock=config.lock,
                postmaster=postmaster,
                stack=stack,
                workers=config.workers,
            )
            restrict_to(conn, config.small)
            small = measure("small")
            small["invoices_after"] = invoice_counts(conn, config.period)
            restore_all(conn, config.period)

            full = measure("full")
            full["invoices_after"] = invoice_counts(conn, config.period)
            full["usage_rows_billed_per_s"] = round(setup["usage_rows_billed"] / full["wall_seconds"])
            rerun = None if config.no_rerun else measure("re-run")
            if rerun is not None:
                rerun["invoices_after"] = invoice_counts(conn, config.period)
            log("spot checks")
            # The last run's drafts are what the invoices hold now; its start was its `now`.
            last_start = conn.execute(
                "SELECT started_at FROM billing_invoicerun WHERE id = %s", ((rerun or full)["run"],)
            ).fetchone()
            assert last_start is not None
            checks = spot_checks(conn, config.period, last_start[0])
        log("EXPLAIN ANALYZE of one chunk's metering query")
        plan = explain_metering(env, config.period)

    targets = {**TARGETS, "wall_seconds_max": config.wall_max}
    ratio = full["peak_rss_mb"] / small["peak_rss_mb"] if small["peak_rss_mb"] else 0.0
    invoices = full["invoices_after"]
    passed = {
        "full_run_wall_seconds": full["wall_seconds"] <= targets["wall_seconds_max"],
        "peak_rss_bounded": ratio <= targets["peak_rss_ratio_full_over_small_max"],
        "one_invoice_per_contract": invoices["invoices"] == config.contracts
        and invoices["contracts_invoiced"] == config.contracts
        and full["created"] == config.contracts,
        "spot_checks": bool(checks) and all(c["ok"] for c in checks),
    }
    if rerun is not None:
        passed["rerun_wall_seconds"] = rerun["wall_seconds"] <= targets["wall_seconds_max"]
        passed["rerun_created_nothing"] = (
            rerun["created"] == 0
            and rerun["updated"] == config.contracts
            and rerun["invoices_after"]["invoices"] == config.contracts
        )
    return {
        "benchmark": "invoice_run",
        "scenario": "S4",
        "machine": machine_info(load_average, postgres=settings),
        "config": {
            "period": config.period,
            "contracts": config.contracts,
            "small_contracts": config.small,
            "settings": "portal.settings.production",
            "run": f"billing.invoice_run queued to {config.workers} Celery workers (prefork, one pool"
            " process each), which bill its chunk tasks; bench/_invoice_child.py --via-workers waits"
            if config.workers
            else "billing.runs.invoice_run_execute in its own process (bench/_invoice_child.py)",
            "workers": config.workers,
            "usage_every_hours": config.usage_every,
            "lock": config.lock or None,
        },
        "data": setup,
        "targets": targets,
        "runs": {"small": small, "full": full, "rerun": rerun},
        "memory": {
            "peak_rss_mb_small": small["peak_rss_mb"],
            "peak_rss_mb_full": full["peak_rss_mb"],
            "peak_rss_ratio_full_over_small": round(ratio, 3),
            "rss_before_run_mb_full": full.get("rss_before_run_mb"),  # in-process runs only
        },
        "spot_checks": {
            "checked": len(checks),
            "ok": sum(1 for c in checks if c["ok"]),
            "time_zones": sorted({c["time_zone"] for c in checks}),
            "examples": [c for c in checks if c["ok"]][:SPOT_CHECK_EXAMPLES],
            "failures": [c for c in checks if not c["ok"]],
        },
        "metering_query_plan": plan,
        "metering_index_only": any(
            "Index Only Scan" in line and "fleet_hourlyusage" in line for line in plan
        ),
        "pass": passed,
        "all_pass": all(passed.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 1000 contracts, 20 customers (small run: 500)"
    )
    parser.add_argument(
        "--contracts", type=int, default=None, help="contracts, one asset each (default 10000)"
    )
    parser.add_argument(
        "--small", type=int, default=None, help="contracts of the memory comparison run (2000)"
    )
    parser.add_argument("--customers", type=int, default=None, help="customers (default 100; quick 20)")
    parser.add_argument("--period", default="2026-10", help="the month billed (default 2026-10)")
    parser.add_argument(
        "--lock",
        default=LOCK_FILE,
        help=f"flock file around each heavy step (default {LOCK_FILE}; '' for none)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="queue each run to this many Celery workers (one pool process each) instead of "
        "executing it in one process (default 0: in one process)",
    )
    parser.add_argument(
        "--usage-every",
        type=int,
        default=1,
        choices=[1, 2, 3, 4, 6, 8, 12, 24],
        help="usage rows every N hours only (default 1: every hour), for a large --contracts",
    )
    parser.add_argument(
        "--wall-max", type=float, default=None, help="the wall-time target in seconds (default 60)"
    )
    parser.add_argument("--no-rerun", action="store_true", help="skip the re-run (a large run's time)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    # The small run bills at least one full chunk (billing.runs.CHUNK = 500 contracts), or the
    # memory comparison would compare a part of a chunk with whole ones.
    args.contracts = args.contracts or (1_000 if args.quick else 10_000)
    args.small = args.small or (500 if args.quick else 2_000)
    args.customers = args.customers or (20 if args.quick else 100)
    # S4's targets: 10,000 contracts in a minute; 100,000 (issue 17) in three.
    args.wall_max = args.wall_max or (60.0 if args.contracts <= 10_000 else 180.0)
    if not 0 < args.small < args.contracts:
        parser.error("--small must be between 0 and --contracts")
    return run_main(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
