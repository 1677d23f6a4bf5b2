"""Ingest benchmark S1a/S1b: heartbeats per second through the real processes, end to end.

    .venv/bin/python bench/ingest.py [--seconds N] [--quick] [--devices N] [--keep-logs]

Starts its own PostgreSQL and Redis (tests/services.py), migrates, creates a fleet of N
devices through the project's services, then starts the real processes — uvicorn
(portal.asgi, 2 workers), one Celery worker (queues default,ingest, concurrency 2) and Celery
beat — and drives them from loopback with wrk (bench/wrk_heartbeats.lua):

- ceiling 1: a bare Django view (bench/bare_app.py) under the same uvicorn command, req/s;
- S1a: one heartbeat per request, all devices in turn, for --seconds;
- S1b: 100 heartbeats per request, the same;
- ceiling 2: PostgreSQL COPY of the stored rows into a table made LIKE fleet_heartbeat.

For S1a and S1b it reports the accepted rate (202 answers × heartbeats per request ÷ load
time) and the end-to-end rate (heartbeats stored in fleet_heartbeat ÷ time from the first
request until the last one was stored), compared with the targets in docs/performance.md.
Prints one JSON object on stdout; progress goes to stderr. Everything it starts is stopped
on the way out, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    ROOT,
    VENV_BIN,
    CpuSample,
    Process,
    Stack,
    WrkResult,
    bench_env,
    ensure_wrk,
    idle_load_average,
    inbox_state,
    log,
    machine_info,
    migrate,
    peak_rss,
    run_main,
    run_wrk,
    services,
    start_beat,
    start_web,
    wait_drained,
    wait_for_log,
)

INGEST_PATH = "/api/v1/ingest/heartbeats"
TARGETS = {
    "s1a_heartbeats_per_s": 1_000,
    "s1b_heartbeats_per_s": 15_000,
    "s1a_over_bare_endpoint": 0.6,
    "s1b_over_copy": 0.3,
}
# Disjoint seq ranges per run, growing, so every heartbeat is new and arrives in order.
SEQ_WARMUP, SEQ_S1A, SEQ_S1B = 1, 1_000_000, 100_000_000
RECEIVED_LINE = re.compile(r"Task fleet\.ingest_drain\[([^\]]+)\] received")
FINISHED_LINE = re.compile(r"Task fleet\.ingest_drain\[([^\]]+)\] (?:succeeded|raised|retry)")
TASK_LINE = re.compile(
    r"Task fleet\.ingest_drain\[(?P<id>[^\]]+)\] succeeded in (?P<secs>[0-9.]+)s: "
    r"\{'rows': (?P<rows>\d+), 'stored': (?P<stored>\d+), 'duplicates': (?P<dups>\d+)"
)


@dataclass
class Config:
    seconds: float
    devices: int
    keep_logs: bool
    connections_single: int = 64
    connections_batch: int = 32
    batch: int = 100


def start_ingest_web(stack: Stack, name: str, app: str, *extra: str) -> tuple[Process, str]:
    """Two uvicorn workers serving `app`: (process, the ingest URL)."""
    process, port = start_web(stack, name, app, 2, *extra)
    return process, f"http://127.0.0.1:{port}{INGEST_PATH}"


# ----------------------------------------------------------------------------- measurements


def pending_heartbeats(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT coalesce(sum(count), 0) FROM fleet_ingestinbox").fetchone()
    return int(row[0]) if row else 0


def count_stored(conn: psycopg.Connection[Any], low: int, high: int) -> int:
    row = conn.execute(
        "SELECT count(*) FROM fleet_heartbeat WHERE seq >= %s AND seq < %s", (low, high)
    ).fetchone()
    return int(row[0]) if row else 0


class Sampler(threading.Thread):
    """Every half second: heartbeats stored so far, heartbeats waiting in the inbox, and what
    the active PostgreSQL sessions are waiting on (pg_stat_activity: Lock, IO, Client…)."""

    WAITS = (
        "SELECT coalesce(wait_event_type, 'running'), coalesce(wait_event, ''), left(query, 60)"
        " FROM pg_stat_activity WHERE state = 'active' AND backend_type = 'client backend'"
        " AND pid <> pg_backend_pid()"
    )

    def __init__(self, url: str, base_id: int) -> None:
        super().__init__(daemon=True)
        self.url, self.base_id = url, base_id
        self.samples: list[tuple[float, int, int]] = []
        self.waits: Counter[str] = Counter()
        self.lock_waits: Counter[str] = Counter()
        self.halt = threading.Event()

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                started = time.monotonic()
                while not self.halt.wait(0.5):
                    top, _ = inbox_state(conn)
                    self.samples.append(
                        (time.monotonic() - started, top - self.base_id, pending_heartbeats(conn))
                    )
                    for kind, event, query in conn.execute(self.WAITS).fetchall():
                        self.waits[f"{kind}:{event}" if event else kind] += 1
                        if kind == "Lock":
                            self.lock_waits[" ".join(query.split())] += 1
        except psycopg.Error:
            if not self.halt.is_set():  # PostgreSQL went away under us: the run is being stopped
                log("sampler: lost the database connection")

    def summary(self) -> dict[str, Any]:
        """Active sessions seen per sample, by wait event (a session sampled N times counts N)."""
        count = len(self.samples) or 1
        return {
            "samples": len(self.samples),
            "active_sessions_per_sample": {k: round(v / count, 2) for k, v in self.waits.most_common(8)},
            "lock_waits_by_query": dict(self.lock_waits.most_common(4)),
        }


def wait_worker_idle(worker: Process, offset: int, timeout: float = 120.0) -> float:
    """Wait until every fleet.ingest_drain task the worker received since `offset` has
    finished (a task ends after its on-commit work, e.g. live publishing). Returns the time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = worker.log_path.read_bytes()[offset:].decode(errors="replace")
        if set(RECEIVED_LINE.findall(text)) <= set(FINISHED_LINE.findall(text)):
            return time.monotonic()
        time.sleep(0.1)
    raise RuntimeError(f"the worker was still busy {timeout:.0f}s after the inbox drained")


def worker_tasks(log_text: str) -> dict[str, Any]:
    """The worker's own account of the drain tasks, from its INFO log lines."""
    received = set(RECEIVED_LINE.findall(log_text))  # not a task of the previous scenario
    tasks = [m for m in TASK_LINE.finditer(log_text) if int(m["rows"]) > 0 and m["id"] in received]
    durations = [float(m["secs"]) for m in tasks]
    stored = sum(int(m["stored"]) for m in tasks)
    busy = sum(durations)
    return {
        "tasks": len(tasks),
        "inbox_rows": sum(int(m["rows"]) for m in tasks),
        "stored": stored,
        "duplicates": sum(int(m["dups"]) for m in tasks),
        "busy_seconds": round(busy, 2),
        "task_seconds_median": round(statistics.median(durations), 3) if durations else None,
        "task_seconds_max": round(max(durations), 3) if durations else None,
        "stored_per_busy_second": round(stored / busy) if busy else None,
    }


def wrk_summary(result: WrkResult, per_request: int) -> dict[str, Any]:
    return {
        "requests": result.requests,
        "seconds": round(result.duration, 2),
        "requests_per_s": round(result.rate, 1),
        "accepted_requests": result.ok,
        "heartbeats_per_request": per_request,
        "other_status": result.status,
        "socket_errors": result.socket_errors,
        "latency_ms": result.latency_ms,
    }


def run_scenario(
    stack: Stack,
    *,
    wrk: str,
    url: str,
    tokens_file: Path,
    name: str,
    batch: int,
    seq_base: int,
    seq_end: int,
    seconds: float,
    connections: int,
    groups: dict[str, int],
    worker: Process,
) -> dict[str, Any]:
    with stack.connect() as conn:
        base_id, _ = inbox_state(conn)
        log_offset = worker.log_path.stat().st_size
        sampler = Sampler(stack.postgres.url, base_id)
        log(f"{name}: {batch} heartbeat(s) per request, {connections} connections, {seconds:.0f}s")
        cpu = CpuSample.begin(groups)
        sampler.start()
        try:
            result = run_wrk(
                wrk,
                url,
                tokens_file=tokens_file,
                batch=batch,
                seq_base=seq_base,
                seconds=seconds,
                connections=connections,
            )
            stored_at_load_end = inbox_state(conn)[0] - base_id
            backlog_at_load_end = pending_heartbeats(conn)
            log(
                f"{name}: {result.ok} accepted requests in {result.duration:.1f}s; "
                f"{backlog_at_load_end} heartbeats still in the inbox; draining"
            )
            last_stored = wait_drained(conn)
            worker_idle = wait_worker_idle(worker, log_offset)
            cpu_seconds = cpu.end()
        finally:
            sampler.halt.set()
            sampler.join()
        stored = count_stored(conn, seq_base, seq_end)
    worker_log = worker.log_path.read_bytes()[log_offset:].decode(errors="replace")
    accepted = result.ok * batch
    elapsed = last_stored - result.wall_start
    end_to_end = stored / elapsed if elapsed > 0 else 0.0
    log(f"{name}: stored {stored} in {elapsed:.1f}s → {end_to_end:,.0f} heartbeats/s end to end")
    return {
        "load": wrk_summary(result, batch),
        "accepted_heartbeats": accepted,
        "accepted_heartbeats_per_s": round(accepted / result.duration, 1),
        "stored_heartbeats": stored,
        # Requests cut off when wrk stopped can still be accepted after its last count.
        "stored_minus_accepted": stored - accepted,
        "first_request_to_last_stored_s": round(elapsed, 2),
        "drain_after_load_s": round(last_stored - result.wall_end, 2),
        # The worker's last task ends after its commit (live publishing runs on commit).
        "worker_idle_after_load_s": round(worker_idle - result.wall_end, 2),
        "stored_during_load_per_s": round(stored_at_load_end / result.duration, 1),
        "backlog_at_load_end": backlog_at_load_end,
        "peak_backlog": max((s[2] for s in sampler.samples), default=backlog_at_load_end),
        "heartbeats_per_s": round(end_to_end, 1),
        "cpu_seconds": cpu_seconds,
        "worker_tasks": worker_tasks(worker_log),
        "postgres_activity": sampler.summary(),
    }


def copy_ceiling(stack: Stack, limit: int) -> dict[str, Any]:
    """COPY the stored heartbeats (all columns but the generated id) into a table created
    LIKE fleet_heartbeat INCLUDING ALL (same columns, defaults, identity, indexes and unique
    constraint; no foreign keys): the rows/s one PostgreSQL session can write them."""
    with stack.connect() as conn:
        columns = [
            name
            for (name,) in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'fleet_heartbeat' AND column_name <> 'id' ORDER BY ordinal_position"
            ).fetchall()
        ]
        column_list = ", ".join(columns)
        buffer = io.BytesIO()
        with conn.cursor().copy(
            f"COPY (SELECT {column_list} FROM fleet_heartbeat ORDER BY id LIMIT {int(limit)}) TO STDOUT"  # noqa: S608
        ) as copy:
            for chunk in copy:
                buffer.write(chunk)
        data = buffer.getvalue()
        rows = data.count(b"\n")
        log(f"COPY: {rows} rows ({len(data) / 1e6:.0f} MB) into a table like fleet_heartbeat, best of 3")
        view = memoryview(data)
        times = []
        for _ in range(3):
            conn.execute("DROP TABLE IF EXISTS bench_copy_heartbeat")
            conn.execute("CREATE TABLE bench_copy_heartbeat (LIKE fleet_heartbeat INCLUDING ALL)")
            conn.execute("CHECKPOINT")
            started = time.monotonic()
            with (
                conn.transaction(),
                conn.cursor().copy(f"COPY bench_copy_heartbeat ({column_list}) FROM STDIN") as copy,
            ):
                for offset in range(0, len(data), 1 << 20):
                    copy.write(view[offset : offset + (1 << 20)])
            times.append(time.monotonic() - started)
        conn.execute("DROP TABLE bench_copy_heartbeat")
        seconds = min(times)
    log(f"COPY: {rows / seconds:,.0f} rows/s")
    return {
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds, 1),
        "runs_s": [round(t, 3) for t in times],
    }


# ----------------------------------------------------------------------------- the run


def prepare(stack: Stack, devices: int) -> list[dict[str, str]]:
    migrate(stack.env)
    log(f"creating {devices} assets with one device each")
    created = subprocess.run(  # noqa: S603
        [str(VENV_BIN / "python"), "bench/_setup_fleet.py", str(devices)],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
    )
    if created.returncode != 0:
        raise RuntimeError(f"fleet setup failed:\n{created.stderr[-3000:]}")
    fleet: dict[str, Any] = json.loads(created.stdout)
    return list(fleet["devices"])


def run(config: Config) -> dict[str, Any]:
    wrk = ensure_wrk()
    load_average = idle_load_average()
    with services("fleetport-bench-", keep_logs=config.keep_logs) as stack:
        folder = stack.folder
        stack.env = bench_env(folder, stack.postgres.url, stack.redis.url)
        devices = prepare(stack, config.devices)
        tokens_file = folder / "tokens.txt"
        tokens_file.write_text("".join(f"{d['token']}\n" for d in devices))

        # Ceiling 1: the bare Django endpoint, alone on the machine.
        bare, bare_url = start_ingest_web(stack, "bare", "bare_app:application", "--app-dir", "bench")
        log("bare endpoint: warm-up")
        run_wrk(wrk, bare_url, tokens_file=tokens_file, batch=1, seq_base=0, seconds=2, connections=8)
        log(f"bare endpoint: {config.connections_single} connections, {config.seconds:.0f}s")
        bare_cpu = CpuSample.begin({"web": bare.pid})
        bare_result = run_wrk(
            wrk,
            bare_url,
            tokens_file=tokens_file,
            batch=1,
            seq_base=0,
            seconds=config.seconds,
            connections=config.connections_single,
        )
        bare_cpu_seconds = bare_cpu.end()
        bare_rss = peak_rss(bare.pid)
        bare.stop()
        log(f"bare endpoint: {bare_result.ok_rate:,.0f} req/s")

        # The portal's real processes.
        celery = str(VENV_BIN / "celery")
        web, url = start_ingest_web(stack, "web", "portal.asgi:application")
        worker = stack.start(
            "worker",
            [
                *(celery, "-A", "portal", "worker", "--queues", "default,ingest", "--concurrency", "2"),
                *("--loglevel", "INFO", "--hostname", "bench@%h"),
            ],
        )
        beat = start_beat(stack)
        wait_for_log(worker, "ready.")
        groups = stack.pids(web=web, worker=worker, beat=beat)
        log("ingest: warm-up")
        warm = run_wrk(
            wrk, url, tokens_file=tokens_file, batch=1, seq_base=SEQ_WARMUP, seconds=3, connections=16
        )
        if warm.ok == 0:
            raise RuntimeError(f"the warm-up was not accepted: {warm}\n{web.tail()}")
        with stack.connect() as conn:
            wait_drained(conn)
        wait_worker_idle(worker, 0)

        common = {"wrk": wrk, "url": url, "tokens_file": tokens_file, "groups": groups, "worker": worker}
        s1a = run_scenario(
            stack,
            name="S1a",
            batch=1,
            seq_base=SEQ_S1A,
            seq_end=SEQ_S1B,
            seconds=config.seconds,
            connections=config.connections_single,
            **common,  # type: ignore[arg-type]
        )
        s1b = run_scenario(
            stack,
            name="S1b",
            batch=config.batch,
            seq_base=SEQ_S1B,
            seq_end=2**62,
            seconds=config.seconds,
            connections=config.connections_batch,
            **common,  # type: ignore[arg-type]
        )
        web_rss, worker_rss = peak_rss(web.pid), peak_rss(worker.pid)
        copy = copy_ceiling(stack, limit=max(s1b["stored_heartbeats"], 200_000))

    bare_rate = bare_result.ok_rate
    s1a_rate, s1b_rate = float(s1a["heartbeats_per_s"]), float(s1b["heartbeats_per_s"])
    copy_rate = float(copy["rows_per_s"])
    s1a_ratio = s1a_rate / bare_rate if bare_rate else 0.0
    s1b_ratio = s1b_rate / copy_rate if copy_rate else 0.0
    checks = {
        "s1a_heartbeats_per_s": s1a_rate >= TARGETS["s1a_heartbeats_per_s"],
        "s1b_heartbeats_per_s": s1b_rate >= TARGETS["s1b_heartbeats_per_s"],
        "s1a_over_bare_endpoint": s1a_ratio >= TARGETS["s1a_over_bare_endpoint"],
        "s1b_over_copy": s1b_ratio >= TARGETS["s1b_over_copy"],
    }
    return {
        "benchmark": "ingest",
        "machine": machine_info(load_average),
        "config": {
            "seconds_per_scenario": config.seconds,
            "devices": config.devices,
            "load_generator": f"wrk, 2 threads, {config.connections_single} connections (S1a, bare) / "
            f"{config.connections_batch} (S1b)",
            "web": "uvicorn portal.asgi:application --workers 2 (uvloop, httptools)",
            "worker": "celery worker --queues default,ingest --concurrency 2, plus celery beat",
            "settings": "portal.settings.dev, DEBUG=0, INGEST_DEVICE_RATE_PER_MINUTE=100000000",
        },
        "targets": TARGETS,
        "bare_endpoint": {
            **wrk_summary(bare_result, 1),
            "requests_per_s": round(bare_rate, 1),
            "cpu_seconds": bare_cpu_seconds,
            "peak_rss_mb": bare_rss["sum_mb"],
        },
        "copy": copy,
        "s1a": s1a,
        "s1b": s1b,
        "ratios": {
            "s1a_over_bare_endpoint": round(s1a_ratio, 3),
            "s1b_over_copy": round(s1b_ratio, 3),
            "s1a_accepted_over_bare_endpoint": round(float(s1a["accepted_heartbeats_per_s"]) / bare_rate, 3)
            if bare_rate
            else 0.0,
            "s1b_accepted_over_copy": round(float(s1b["accepted_heartbeats_per_s"]) / copy_rate, 3)
            if copy_rate
            else 0.0,
        },
        "peak_rss_mb": {"web": web_rss, "worker": worker_rss},
        "pass": checks,
        "all_pass": all(checks.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=25.0, help="load time per scenario (default 25)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5 s per scenario, 200 devices")
    parser.add_argument("--devices", type=int, default=None, help="devices in the fleet (default 1000)")
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the processes' logs (folder on stderr)"
    )
    args = parser.parse_args()
    seconds = min(args.seconds, 5.0) if args.quick else args.seconds
    devices = args.devices or (200 if args.quick else 1000)
    config = Config(seconds=seconds, devices=devices, keep_logs=args.keep_logs)
    return run_main(lambda: run(config))


if __name__ == "__main__":
    sys.exit(main())
