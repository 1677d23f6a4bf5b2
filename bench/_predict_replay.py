"""The timed part of bench/predict.py, in a process with Django set up against the bench's database.

    python bench/_predict_replay.py CONFIG_JSON      (run by bench/predict.py; stdout is JSON)

Creates the asset model, its health rules and the fleet through the project's services, plans
one labelled scenario per asset (fleet.simulator.scenarios), then replays simulated time in
steps of the evaluation interval: every device's heartbeats of the step go to the ingest
endpoint as one batched request (the device contract, timestamps in simulated time, which ends
now), the step waits until the Celery worker has drained the inbox, and then
`fleet.health.evaluate(asset_ids, now=end of the step)` runs over the stored rollups. After each
evaluation the assets with an active prediction (an active `health:` alarm) are recorded;
bench/_predict_score.py turns them and the plan into the figures.
"""

from __future__ import annotations

import http.client
import json
import random
import sys
import threading
import time
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import django

django.setup()

from _common import bench_device, log  # noqa: E402
from _predict_score import score  # noqa: E402
from django.db import connection  # noqa: E402

from fleet.health import KEY_PREFIX, Summary, evaluate  # noqa: E402
from fleet.models import ACTIVE_ALARM_STATES, Alarm, AssetHealth, HealthRule, MetricKind  # noqa: E402
from fleet.services import asset_model_create, metric, site_create  # noqa: E402
from fleet.simulator.scenarios import Scenario, ScenarioSim, fleet_plan  # noqa: E402
from fleet.simulator.spec import MAX_BATCH, DeviceSpec, Heartbeat, MetricSpec  # noqa: E402
from portal.models import Customer  # noqa: E402

INGEST_PATH = "/api/v1/ingest/heartbeats"
EVALUATE_BATCH = 500  # assets per evaluate() call, as fleet.health.tasks batches them
TEMP_LIMIT, VIBRATION_LIMIT = 85.0, 7.1
METRICS = [
    metric("run_hours", "Run hours", "h", MetricKind.COUNTER),
    metric("energy_kwh", "Energy", "kWh", MetricKind.COUNTER),
    metric("pressure_bar", "Pressure", "bar", MetricKind.GAUGE, "5.5", "8.5"),
    metric("temp_c", "Oil temperature", "°C", MetricKind.GAUGE, "40", str(TEMP_LIMIT)),
    metric("vibration_mm_s", "Vibration", "mm/s", MetricKind.GAUGE, "0.3", str(VIBRATION_LIMIT)),
]
# The rules measured: stated here and printed with the figures.
RULES: list[dict[str, Any]] = [
    {
        "name": "Oil temperature trend",
        "metric": "temp_c",
        "kind": "trend",
        "comparison": "gt",
        "limit": Decimal(str(TEMP_LIMIT)),
        "horizon_hours": 48,
        "lookback_hours": 72,
    },
    {
        "name": "Vibration trend",
        "metric": "vibration_mm_s",
        "kind": "trend",
        "comparison": "gt",
        "limit": Decimal(str(VIBRATION_LIMIT)),
        "horizon_hours": 48,
        "lookback_hours": 72,
    },
    {
        "name": "Vibration unlike normal",
        "metric": "vibration_mm_s",
        "kind": "anomaly",
        "lookback_hours": 168,
        "sensitivity": Decimal(4),
        "params": {"recent_hours": 3},
    },
]


def setup(count: int) -> tuple[list[dict[str, str]], list[MetricSpec], int]:
    started = time.monotonic()
    customer = Customer.objects.create(name="Predict Industries", slug="predict-industries")
    site = site_create(actor=None, customer=customer, name="Predict plant")
    model = asset_model_create(
        actor=None,
        code="predict-compressor",
        name="Predict compressor",
        heartbeat_interval_seconds=900,
        metrics=METRICS,
    )
    for spec in RULES:
        rule = HealthRule(asset_model=model, **spec)
        rule.full_clean()
        rule.save()
    devices = [
        bench_device(
            site=site,
            model=model,
            serial=f"PRED-A{n:06d}",
            name=f"Compressor {n}",
            device_serial=f"PRED-D{n:06d}",
        )
        for n in range(count)
    ]
    specs = [
        MetricSpec(
            code=m["code"],
            kind=str(m["kind"]),
            normal_min=float(m["normal_min"]) if m["normal_min"] is not None else None,
            normal_max=float(m["normal_max"]) if m["normal_max"] is not None else None,
        )
        for m in sorted(METRICS, key=lambda m: str(m["code"]))
    ]
    log(f"setup: {count} assets with one device each in {time.monotonic() - started:.1f}s")
    return devices, specs, model.heartbeat_interval_seconds


class Poster:
    """Batched POSTs over keep-alive connections, one per thread; retries 429/503 as told."""

    def __init__(self, url: str, threads: int) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(max_workers=threads)
        self.requests = 0
        self.retries = 0
        self.lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            self.local.conn = conn
        return conn

    def post(self, token: str, heartbeats: list[Heartbeat]) -> None:
        body = json.dumps(heartbeats, allow_nan=False).encode()
        headers = {"Authorization": f"Device {token}", "Content-Type": "application/json"}
        for attempt in range(60):
            conn = self._connection()
            try:
                conn.request("POST", INGEST_PATH, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                self.local.conn = None
                time.sleep(0.5)
                continue
            with self.lock:
                self.requests += 1
            if response.status == 202:
                return
            if response.status in (429, 503):
                with self.lock:
                    self.retries += 1
                time.sleep(min(float(response.headers.get("Retry-After") or 1), 5.0) * (1 + attempt / 10))
                continue
            raise RuntimeError(f"ingest answered {response.status}: {payload[:500]!r}")
        raise RuntimeError("ingest kept refusing a batch")

    def post_all(self, batches: list[tuple[str, list[Heartbeat]]]) -> None:
        for future in [self.pool.submit(self.post, token, beats) for token, beats in batches]:
            future.result()


def inbox_empty() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM fleet_ingestinbox)")
        row = cursor.fetchone()
    return not (row and row[0])


def wait_drained(timeout: float = 600.0) -> None:
    # The worker deletes the rows it claimed in the transaction that stores them: an empty
    # inbox means every accepted heartbeat is stored with its rollups.
    deadline = time.monotonic() + timeout
    while not inbox_empty():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the inbox did not drain within {timeout:.0f}s")
        time.sleep(0.02)


def warned_assets(asset_ids: list[str]) -> set[str]:
    return {
        str(a)
        for a in Alarm.objects.filter(
            asset_id__in=asset_ids, key__startswith=KEY_PREFIX, state__in=ACTIVE_ALARM_STATES
        ).values_list("asset_id", flat=True)
    }


SAMPLES_PER_KIND = 3
SAMPLE_KEYS = (
    "name",
    "level",
    "slope_per_hour",
    "hours_to_limit",
    "points",
    "z_level",
    "z_spread",
    "baseline",
    "recent",
    "message",
)


def false_warning_samples(
    plan: list[Scenario],
    raised: set[int],
    asset_ids: list[str],
    now: datetime,
    window: timedelta,
    room: int,
    seen: Counter[tuple[Any, ...]],
) -> list[dict[str, Any]]:
    """What the rules saw when they raised a warning that counts as false (for the report)."""
    picked = []
    for n in sorted(raised):
        s = plan[n]
        if s.degrading and s.fault_at is not None and s.fault_at - window <= now < s.fault_at:
            continue
        picked.append(n)
    samples: list[dict[str, Any]] = []
    for n in picked:
        if len(samples) >= room:
            break
        fault_at = plan[n].fault_at
        health = AssetHealth.objects.filter(asset_id=asset_ids[n]).first()
        active = [e for e in (health.detail.values() if health else []) if e.get("active")]
        # A few of each kind (scenario, duty, rules), not the first twenty of the first round.
        key = (plan[n].kind, plan[n].one_shift, tuple(sorted(str(e.get("name")) for e in active)))
        if seen[key] >= SAMPLES_PER_KIND:
            continue
        seen[key] += 1
        samples.append({
            "asset": n, "scenario": plan[n].kind.value, "one_shift": plan[n].one_shift, "at": now.isoformat(),
            "fault_at": fault_at.isoformat() if fault_at else None,
            "active": [{k: e.get(k) for k in SAMPLE_KEYS if k in e} for e in active],
        })  # fmt: skip
    return samples


def main(config: dict[str, Any]) -> dict[str, Any]:
    assets, days, seed = int(config["assets"]), float(config["days"]), int(config["seed"])
    eval_hours = float(config["eval_hours"])
    devices, metric_specs, interval = setup(assets)
    # Simulated time ends at the last whole hour before now (the device clock is never ahead).
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(days=days)
    plan = fleet_plan(
        assets,
        start=start,
        days=days,
        seed=seed,
        drift_limit=TEMP_LIMIT,
        vibration_limit=VIBRATION_LIMIT,
        warmup_days=min(10.0, days / 3),
    )
    sims = [
        ScenarioSim(
            DeviceSpec(
                device_id=d["device"],
                serial_number=f"PRED-D{n:06d}",
                model_code="predict-compressor",
                interval_seconds=interval,
                metrics=tuple(metric_specs),
            ),
            scenario,
            rng=random.Random(f"{seed}:{n}"),
        )
        for n, (d, scenario) in enumerate(zip(devices, plan, strict=True))
    ]
    asset_ids = [d["asset"] for d in devices]
    number = {a: n for n, a in enumerate(asset_ids)}
    poster = Poster(config["url"], int(config["threads"]))
    step = timedelta(hours=eval_hours)
    tick = timedelta(seconds=interval)
    first_eval = start + timedelta(hours=max(72.0, eval_hours))  # a lookback of history first

    evaluations: list[datetime] = []
    warned: dict[datetime, set[int]] = {}
    false_samples: list[dict[str, Any]] = []
    sample_kinds: Counter[tuple[Any, ...]] = Counter()
    window = timedelta(hours=2 * max(int(r.get("horizon_hours", 0)) for r in RULES))
    totals = Summary()
    timing = {"simulate_s": 0.0, "post_s": 0.0, "drain_s": 0.0, "evaluate_s": 0.0}
    eval_seconds: list[float] = []
    heartbeats = 0
    at, now = start, start
    started = time.monotonic()
    while now < end:
        now = min(now + step, end)
        t0 = time.monotonic()
        while at < now:
            for sim in sims:
                sim.tick(at)
            at += tick
        batches: list[tuple[str, list[Heartbeat]]] = []
        for d, sim in zip(devices, sims, strict=True):
            while sim.outbox:
                chunk = sim.outbox[:MAX_BATCH]
                batches.append((d["token"], chunk))
                heartbeats += len(chunk)
                sim.delivered(len(chunk))
        t1 = time.monotonic()
        poster.post_all(batches)
        t2 = time.monotonic()
        wait_drained()
        t3 = time.monotonic()
        timing["simulate_s"] += t1 - t0
        timing["post_s"] += t2 - t1
        timing["drain_s"] += t3 - t2
        if now >= first_eval:
            for low in range(0, len(asset_ids), EVALUATE_BATCH):
                totals.add(evaluate(asset_ids[low : low + EVALUATE_BATCH], now))
            warned[now] = {number[a] for a in warned_assets(asset_ids)}
            raised = warned[now] - (warned[evaluations[-1]] if evaluations else set())
            false_samples.extend(
                false_warning_samples(
                    plan, raised, asset_ids, now, window, room=20 - len(false_samples), seen=sample_kinds
                )
            )
            evaluations.append(now)
            t4 = time.monotonic()
            eval_seconds.append(t4 - t3)
            timing["evaluate_s"] += t4 - t3
        if len(evaluations) % 8 == 1 and now >= first_eval:
            log(
                f"{now:%Y-%m-%d %H:%M} simulated: {heartbeats:,} heartbeats, "
                f"{len(warned.get(now, ()))} assets warned, {time.monotonic() - started:.0f}s"
            )
    wall = time.monotonic() - started
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM fleet_heartbeat), (SELECT count(*) FROM fleet_failedbatch), "
            "(SELECT count(*) FROM fleet_telemetryrollup WHERE resolution = 'hour')"
        )
        stored, failed_batches, hour_rollups = cursor.fetchone() or (0, 0, 0)
    figures = score(plan, evaluations, warned, window=window)
    eval_seconds.sort()
    return {
        "figures": figures,
        "replay": {
            "simulated_start": start.isoformat(),
            "simulated_end": end.isoformat(),
            "heartbeats": heartbeats,
            "stored": stored,
            "failed_batches": failed_batches,
            "hour_rollups": hour_rollups,
            "requests": poster.requests,
            "retried_429_503": poster.retries,
            "wall_s": round(wall, 1),
            "heartbeats_per_s": round(heartbeats / wall, 1),
            **{k: round(v, 1) for k, v in timing.items()},
        },
        "evaluation": {
            "evaluations": len(evaluations),
            "first_at": evaluations[0].isoformat() if evaluations else None,
            "seconds_per_evaluation_median": round(eval_seconds[len(eval_seconds) // 2], 3)
            if eval_seconds
            else None,
            "ms_per_asset_median": round(eval_seconds[len(eval_seconds) // 2] / assets * 1000, 3)
            if eval_seconds
            else None,
            "summary": totals.as_dict(),
        },
        "false_warning_samples": false_samples,
        "rules": [{k: (float(v) if isinstance(v, Decimal) else v) for k, v in r.items()} for r in RULES],
        "plan": [
            {
                "kind": s.kind.value,
                "fault_at": s.fault_at.isoformat() if s.fault_at else None,
                "onset": s.onset.isoformat() if s.onset else None,
            }
            for s in plan
        ]
        if config.get("with_plan")
        else None,
    }


if __name__ == "__main__":
    json.dump(main(json.loads(sys.argv[1])), sys.stdout)
