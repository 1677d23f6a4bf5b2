"""Predictive maintenance measured against ground truth: a simulated fleet replayed through ingest.

    .venv/bin/python bench/predict.py [--quick] [--assets N] [--days D] [--eval-hours H]
                                      [--seed S] [--keep-logs]

Starts its own PostgreSQL and Redis, migrates, starts the real ingest processes — uvicorn
(portal.asgi, one worker) and one Celery worker (queues default,ingest, concurrency 2); no
beat, so nothing evaluates at the real present behind the replay's back — and runs
bench/_predict_replay.py: a fleet of N assets (default 1,000), each following a labelled
scenario of fleet/simulator/scenarios.py (10 % drift to failure, 10 % growing vibration, 10 %
noisy sensor, the rest ordinary duty cycles), replayed over D simulated days (default 60)
ending now, one heartbeat per 15 simulated minutes, each device's heartbeats of an evaluation
interval in one batched request through the ingest endpoint and the drain worker. After each
interval (default 6 h) `fleet.health.evaluate(asset_ids, now)` runs with the bench's own
`HealthRule`s (printed with the figures), and the assets with an active prediction are scored
against the plan (bench/_predict_score.py states the definitions).

Prints one JSON object: the share of degradations warned before their fault, the median lead
time, false warnings per 100 asset-days, counts per scenario, the replay's and evaluation's
timings, the targets and the machine's load. Progress goes to stderr.
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
    CpuSample,
    bench_env,
    idle_load_average,
    log,
    machine_info,
    migrate,
    run_main,
    services,
    start_web,
    wait_for_log,
)

TARGETS = {"warned_share": 0.9, "median_lead_hours": 12.0, "false_warnings_per_100_asset_days": 1.0}


def run(args: argparse.Namespace) -> dict[str, Any]:
    load_average = idle_load_average()
    with services("fleetport-predict-", keep_logs=args.keep_logs) as stack:
        stack.env = bench_env(stack.folder, stack.postgres.url, stack.redis.url)
        migrate(stack.env)
        web, port = start_web(stack, "web", "portal.asgi:application", 1)
        celery = str(VENV_BIN / "celery")
        worker = stack.start(
            "worker",
            [
                *(celery, "-A", "portal", "worker", "--queues", "default,ingest", "--concurrency", "2"),
                *("--loglevel", "INFO", "--hostname", "predict@%h"),
            ],
        )
        wait_for_log(worker, "ready.")
        config = {
            "assets": args.assets,
            "days": args.days,
            "seed": args.seed,
            "eval_hours": args.eval_hours,
            "threads": 4,
            "url": f"http://127.0.0.1:{port}",
            "with_plan": args.with_plan,
        }
        log(f"replaying {args.days:g} days of {args.assets} assets, evaluating every {args.eval_hours:g} h")
        cpu = CpuSample.begin(stack.pids(web=web, worker=worker))
        started = time.monotonic()
        child = subprocess.run(  # noqa: S603 - our own script
            [str(VENV_BIN / "python"), "bench/_predict_replay.py", json.dumps(config)],
            cwd=ROOT,
            env=stack.env,
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        wall = time.monotonic() - started
        cpu_seconds = cpu.end()
        if child.returncode != 0:
            raise RuntimeError(f"the replay failed ({child.returncode}); worker:\n{worker.tail()}")
    result: dict[str, Any] = json.loads(child.stdout)
    figures = result["figures"]
    checks = {
        "warned_share": (figures["warned_share"] or 0) >= TARGETS["warned_share"],
        "median_lead_hours": (figures["median_lead_hours"] or 0) >= TARGETS["median_lead_hours"],
        "false_warnings_per_100_asset_days": (figures["false_warnings_per_100_asset_days"] or 0)
        <= TARGETS["false_warnings_per_100_asset_days"],
    }
    return {
        "benchmark": "predict",
        "machine": machine_info(load_average, cpu_seconds=cpu_seconds),
        "config": {
            "assets": args.assets,
            "days": args.days,
            "seed": args.seed,
            "heartbeat_every_simulated_minutes": 15,
            "evaluate_every_simulated_hours": args.eval_hours,
            "warning_window_hours": "2 × the trend horizon before the fault",
            "web": "uvicorn portal.asgi:application --workers 1",
            "worker": "celery worker --queues default,ingest --concurrency 2 (no beat)",
        },
        "targets": TARGETS,
        **result,
        "wall_s": round(wall, 1),
        "pass": checks,
        "all_pass": all(checks.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a development run: 100 assets, 21 days")
    parser.add_argument("--assets", type=int, default=None, help="assets in the fleet (default 1000)")
    parser.add_argument("--days", type=float, default=None, help="simulated days (default 60)")
    parser.add_argument("--eval-hours", type=float, default=6.0, help="simulated hours between evaluations")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--with-plan", action="store_true", help="include every asset's scenario in the JSON")
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the processes' logs (folder on stderr)"
    )
    args = parser.parse_args()
    args.assets = args.assets or (100 if args.quick else 1000)
    args.days = args.days or (21.0 if args.quick else 60.0)
    return run_main(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
