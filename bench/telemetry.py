"""S5: dashboards over a large telemetry store, its bytes on disk, and dropping a day.

    .venv/bin/python bench/telemetry.py [--heartbeats N] [--assets N] [--customers N]
        [--minute-assets N] [--hour-assets N] [--hour-days D] [--samples N] [--keep-logs]
        [--jobs N] [--min-free-gb G] [--lock PATH] [--data DIR] [--no-drop]

Starts its own PostgreSQL and Redis, migrates (pg_partman makes the partitions), then in a
child process with the portal's settings: creates the fleet (`--customers` customers sharing
`--assets` assets, one device each) and loads, by SQL into the partitioned tables
(bench/_telemetry_load.py), `--heartbeats` raw heartbeats (every asset once a minute up to
now), minute rollups for the same minutes and `--hour-days` of hour and day rollups (one
metric, for `--minute-assets` / `--hour-assets` assets). Loading is not timed against a target;
it fills `--jobs` partitions at a time and stops (saying so) when the free disk would fall
below `--min-free-gb`.

A long load can run at low priority outside the benchmark lock (`nice -n 19 ionice -c3
bench/telemetry.py --lock /tmp/fleetport-bench.lock …`): with `--lock` the child takes that
lock only after loading, then puts itself, PostgreSQL's processes and Redis back to normal
CPU and I/O priority before it measures.

With `--data DIR` the PostgreSQL cluster is kept in DIR: the first run creates and loads it,
later runs measure the same data again with the code as it is then (no fleet made, nothing
loaded; the newest heartbeat is as old as the load, which the JSON gives as
`load.data_age_minutes`). `--no-drop` leaves the day in place for such a later run; delete DIR
when done (100 M is ~70 GB).

Then measures through the real views with Django's test Client (bench/_telemetry_measure.py):
the fleet overview page of a customer (its share of the assets, 50 a page: the first page, the
last, and the first ordered by risk), the asset chart endpoint
(`/api/v1/assets/<id>/telemetry/`) over 2 h / 24 h / 7 d / 30 d, a page of the raw
heartbeats API and the floor (`/healthz` through the same client and middleware), p50/p95/p99
each; bytes on disk per heartbeat and per rollup (table + indexes
+ TOAST over all partitions); and the time `fleet.partitions.prune` takes to drop one day's
partition. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
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
    process_tree,
    run_main,
    services,
)

TARGETS = {"overview_p95_ms_max": 50.0, "chart_p95_ms_max": 100.0}
CHARTS = ("chart_24h", "chart_7d", "chart_30d")  # the dashboard ranges the target is about
OVERVIEWS = ("overview", "overview_last_page", "overview_by_risk")  # the target: the worst
HELD: list[Any] = []  # the lock file of --lock, open (and so locked) until the child exits


def child(args: argparse.Namespace) -> dict[str, Any]:
    import django

    django.setup()
    from datetime import UTC, datetime

    from _telemetry_load import create_fleet, kept_fleet, load, newest_heartbeat_age
    from _telemetry_measure import disk, drop_a_day, explain, latencies

    marker = Path(args.data, "loaded.json") if args.data else None
    if marker and marker.exists():
        log(f"measuring the data loaded in {args.data} again")
        fleet, loaded = kept_fleet(), json.loads(marker.read_text())
    else:
        started = time.monotonic()
        fleet = create_fleet(args.customers, args.assets)
        loaded = load(
            fleet["customer"],
            args.heartbeats,
            args.assets,
            args.minute_assets,
            args.hour_assets,
            args.hour_days,
            jobs=args.jobs,
            min_free_bytes=int(args.min_free_gb * 2**30),
        )
        loaded["total_seconds"] = round(time.monotonic() - started, 1)
        log(f"loaded in {loaded['total_seconds']} s")
        if marker:
            marker.write_text(json.dumps(loaded))
    measuring = _measuring_priority(args.lock)
    now = datetime.now(UTC)
    loaded["data_age_minutes"] = newest_heartbeat_age(now)
    measured = latencies(fleet["user"], fleet["customer"], args.samples, now)
    plans = explain(fleet["customer"], now)
    on_disk = disk()
    dropped = None
    if not args.no_drop:
        log("drop a day")
        dropped = drop_a_day()
    return {
        "load": loaded,
        "measuring": measuring,
        "latency": measured,
        "disk": on_disk,
        "drop_a_day": dropped,
        "explain": plans,
    }


def _measuring_priority(lock: str) -> dict[str, Any]:
    """With `lock`: wait for it (held until this process exits), then give this process,
    PostgreSQL's and Redis normal CPU and I/O priority again (the load may have run at
    `nice -n 19 ionice -c3`; raising it back needs root). The load average when measuring
    starts, either way."""
    result: dict[str, Any] = {"lock": lock or None}
    if lock:
        log(f"waiting for {lock}")
        waited = time.monotonic()
        held = open(lock, "a")  # noqa: SIM115 - kept open: the lock lasts as long as the process
        fcntl.flock(held, fcntl.LOCK_EX)
        HELD.append(held)  # a local alone would be closed, and the lock let go, on return
        result["lock_wait_seconds"] = round(time.monotonic() - waited, 1)
        pids = [os.getpid()]
        for server in os.environ.get("S5_SERVER_PIDS", "").split():
            pids += process_tree(int(server))
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.setpriority(os.PRIO_PROCESS, pid, 0)
        ionice = shutil.which("ionice")
        if ionice:
            subprocess.run([ionice, "-c2", "-n4", "-p", *map(str, pids)], check=False, capture_output=True)  # noqa: S603
        result["reniced_pids"] = len(pids)
    result["load_average"] = [round(v, 2) for v in os.getloadavg()]
    result["free_disk_gb"] = round(shutil.disk_usage(tempfile.gettempdir()).free / 2**30, 1)
    log(f"measuring (load average {result['load_average'][0]})")
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_average = idle_load_average()
    kept = Path(args.data).resolve() if args.data else None
    with services("fleetport-s5-", keep_logs=args.keep_logs, postgres_folder=kept) as stack:
        # Pages name their static files without a collectstatic manifest (none is served here).
        env = bench_env(stack.folder, stack.postgres.url, stack.redis.url, STATIC_FILES="source")
        redis = stack.redis.process.pid if stack.redis.process else 0
        env["S5_SERVER_PIDS"] = f"{stack.postmaster_pid()} {redis}".removesuffix(" 0")
        migrate(env)
        argv = [str(VENV_BIN / "python"), str(Path(__file__)), "--child", *sys.argv[1:]]
        # The child's progress goes straight to stderr (a long load is watched as it goes).
        done = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=False)  # noqa: S603
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
        "csv_export": "latency csv_24h (raw heartbeats) and csv_30d (minute rollups), no target",
        "targets": TARGETS,
        "ok": worst_overview <= TARGETS["overview_p95_ms_max"] and worst_chart <= TARGETS["chart_p95_ms_max"],
        "machine": machine_info(
            load_average,
            load_average_when_measuring=measured["measuring"]["load_average"],
            cores_shared="not measured: read load_average_when_measuring",
        ),
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
    parser.add_argument(
        "--jobs", type=int, default=2, help="partitions filled at a time (one connection each)"
    )
    parser.add_argument("--min-free-gb", type=float, default=5.0, help="stop loading below this free disk")
    parser.add_argument("--lock", default="", help="flock file taken after loading, before measuring")
    parser.add_argument("--data", default="", help="keep the cluster here; measure it again if loaded")
    parser.add_argument("--no-drop", action="store_true", help="do not drop a day (measure --data again)")
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
