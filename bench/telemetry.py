"""S5: dashboards over a large telemetry store, its bytes on disk, and dropping a day.

    .venv/bin/python bench/telemetry.py [--heartbeats N] [--assets N] [--customers N]
        [--minute-assets N] [--hour-assets N] [--hour-days D] [--samples N] [--keep-logs]

Starts its own PostgreSQL and Redis, migrates (pg_partman makes the partitions), then in a
child process with the portal's settings: creates the fleet (`--customers` customers sharing
`--assets` assets, one device each) and loads, by SQL into the partitioned tables
(bench/_telemetry_load.py), `--heartbeats` raw heartbeats (every asset once a minute up to
now), minute rollups for the same minutes and `--hour-days` of hour and day rollups (one
metric, for `--minute-assets` / `--hour-assets` assets). Loading is not timed against a target.

Then measures through the real views with Django's test Client (bench/_telemetry_measure.py):
the fleet overview page of a customer (its share of the assets, 50 a page: the first page, the
last, and the first ordered by risk), the asset chart endpoint
(`/api/v1/assets/<id>/telemetry/`) over 2 h / 24 h / 7 d / 30 d, a page of the raw
heartbeats API and the floor (`/healthz` through the same client and middleware), p50/p95/p99
each; bytes on disk per heartbeat and per rollup (table + indexes
+ TOAST over all partitions); and the time `fleet.partitions.prune` takes to drop one day's
partition. There is no telemetry CSV export in the portal to measure. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    ROOT,
    VENV_BIN,
    bench_env,
    idle_load_average,
    log,
    machine_info,
    migrate,
    run_main,
    services,
)

TARGETS = {"overview_p95_ms_max": 50.0, "chart_p95_ms_max": 100.0}
CHARTS = ("chart_24h", "chart_7d", "chart_30d")  # the dashboard ranges the target is about
OVERVIEWS = ("overview", "overview_last_page", "overview_by_risk")  # the target: the worst


def child(args: argparse.Namespace) -> dict[str, Any]:
    import django

    django.setup()
    from datetime import UTC, datetime

    from _telemetry_load import create_fleet, load
    from _telemetry_measure import disk, drop_a_day, explain, latencies

    started = time.monotonic()
    fleet = create_fleet(args.customers, args.assets)
    loaded = load(
        fleet["customer"], args.heartbeats, args.assets, args.minute_assets, args.hour_assets, args.hour_days
    )
    loaded["total_seconds"] = round(time.monotonic() - started, 1)
    log(f"loaded in {loaded['total_seconds']} s")
    now = datetime.now(UTC)
    measured = latencies(fleet["user"], fleet["customer"], args.samples, now)
    plans = explain(fleet["customer"], now)
    on_disk = disk()
    log("drop a day")
    dropped = drop_a_day()
    return {"load": loaded, "latency": measured, "disk": on_disk, "drop_a_day": dropped, "explain": plans}


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_average = idle_load_average()
    with services("fleetport-s5-", keep_logs=args.keep_logs) as stack:
        # Pages name their static files without a collectstatic manifest (none is served here).
        env = bench_env(stack.folder, stack.postgres.url, stack.redis.url, STATIC_FILES="source")
        migrate(env)
        argv = [str(VENV_BIN / "python"), str(Path(__file__)), "--child", *sys.argv[1:]]
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)  # noqa: S603
        sys.stderr.write(done.stderr[-6000:])
        if done.returncode != 0:
            raise RuntimeError("the measuring child failed")
        measured = json.loads(done.stdout)
    latency = measured["latency"]
    worst_chart = max(latency[c]["p95_ms"] for c in CHARTS)
    worst_overview = max(latency[o]["p95_ms"] for o in OVERVIEWS)
    heartbeat = measured["disk"]["heartbeat"]
    return {
        "scenario": "S5 telemetry at scale",
        "client": "django.test.Client in one process (no socket, no ASGI server)",
        "heartbeats": heartbeat["rows"],  # counted before the day was dropped
        "assets": args.assets,
        "customers": args.customers,
        **measured,
        "bytes_per_heartbeat": heartbeat["bytes_per_row"],
        "csv_export": "none in the portal (the raw heartbeats API page is measured instead)",
        "targets": TARGETS,
        "ok": worst_overview <= TARGETS["overview_p95_ms_max"] and worst_chart <= TARGETS["chart_p95_ms_max"],
        "machine": machine_info(load_average, cores_shared="other helpers' tests ran meanwhile"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heartbeats", type=int, default=100_000_000)
    parser.add_argument("--assets", type=int, default=10_000)
    parser.add_argument("--customers", type=int, default=10)
    parser.add_argument("--minute-assets", type=int, default=None, help="default: all assets")
    parser.add_argument("--hour-assets", type=int, default=None, help="default: all assets")
    parser.add_argument("--hour-days", type=int, default=365)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--keep-logs", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.minute_assets = args.assets if args.minute_assets is None else args.minute_assets
    args.hour_assets = args.assets if args.hour_assets is None else args.hour_assets
    if args.child:
        print(json.dumps(child(args)))
        return 0
    return run_main(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
