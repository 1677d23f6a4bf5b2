"""Burst benchmark S6: ten times the S1a rate at one node for ten minutes, then the drain.

    .venv/bin/python bench/burst.py [--seconds N] [--s1a-rate R | --measure-s1a [--s1a-seconds N]]
                                    [--multiple M] [--batch B] [--devices N] [--keep-logs]

Starts its own PostgreSQL and Redis (tests/services.py), migrates, creates a fleet of N
devices (bench/_setup_fleet.py), then runs one node as the Procfile does: uvicorn
(portal.asgi, one process, the Procfile's options), one Celery worker (queues default,ingest,
concurrency 2) and Celery beat, with the benchmarks' settings (bench/_common.py bench_env: no
per-device rate limit, so what is shed is shed by the node's own backlog limit).

1. S1a: --s1a-rate, by default docs/performance.md's figure (S1A_DOCUMENTED); with
   --measure-s1a, one heartbeat per request from wrk as fast as the node answers, for
   --s1a-seconds, then the drain (bench/ingest.py's scenario); its end-to-end rate
   (heartbeats stored ÷ time from the first request to the last stored) is the S1a rate.
2. The burst: M × the S1a rate in heartbeats/s, B heartbeats per request (devices sending
   what they held back), paced by wrk (bench/_burst_wrk.lua) for --seconds; then it waits
   until the inbox is drained and the worker idle.

Prints one JSON object: requests sent, accepted (202), shed (429/503), other answers and
socket errors; heartbeats accepted, stored, lost (accepted − stored: must be 0) and
duplicated; the drain; the peak RSS of each process (VmHWM) and the resident set sampled
through the burst; CPU seconds per process; the load average at the start and at the end.
Everything it starts is stopped on the way out, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as common
from _common import (
    BENCH,
    CpuSample,
    Node,
    Stack,
    WrkResult,
    inbox_state,
    log,
    peak_rss,
    process_tree,
    resident_kib,
    run_wrk,
    start_node,
    start_web,
    wait_drained,
)
from ingest import (
    INGEST_PATH,
    SEQ_S1A,
    SEQ_S1B,
    SEQ_WARMUP,
    Sampler,
    count_stored,
    pending_heartbeats,
    prepare,
    run_scenario,
    wait_worker_idle,
    worker_tasks,
    wrk_summary,
)

BURST_SCRIPT = BENCH / "_burst_wrk.lua"
SEQ_BURST = SEQ_S1B  # above every S1a seq; this script runs no S1b
SEQ_END = 2**62
# S1a as docs/performance.md records it (bench/ingest.py, two uvicorn workers, 2026-12-07
# 10:10). A measurement on this node while the machine is busy can come out far lower (217/s
# once), and 10 × that no burst; so the documented figure is the default, --measure-s1a the
# option.
S1A_DOCUMENTED = 5314.0
# The backlog a 10-minute overload leaves (up to INGEST_BACKLOG_LIMIT, 200,000 heartbeats)
# drained at ~650/s once in a busy machine: more than _common's 300 s.
DRAIN_TIMEOUT = 1800.0
# "Bounded memory": a process's highest resident set over its resident set after one minute.
MEMORY_GROWTH = 1.25


@dataclass
class Config:
    seconds: float
    multiple: float
    batch: int
    devices: int
    s1a_rate: float | None
    s1a_seconds: float
    connections: int
    keep_logs: bool


class ResidentSampler(threading.Thread):
    """Every 2 s: the resident set (VmRSS) of each named process tree, in MiB."""

    def __init__(self, groups: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.groups = groups
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in groups}
        self.halt = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while True:
            for name, pid in self.groups.items():
                kib = sum(resident_kib(p) for p in process_tree(pid))
                self.samples[name].append((time.monotonic() - started, round(kib / 1024, 1)))
            if self.halt.wait(2.0):
                return

    def summary(self) -> dict[str, dict[str, float]]:
        """Per process tree: the first sample, the one after a minute of burst, the last and the
        highest. Bounded memory: the highest is not far above the one after a minute."""
        out = {}
        for name, samples in self.samples.items():
            if not samples:
                continue
            values = [mb for _t, mb in samples]
            after_1_min = next((mb for t, mb in samples if t >= 60.0), values[-1])
            out[name] = {
                "first_mb": values[0],
                "after_1_min_mb": after_1_min,
                "last_mb": values[-1],
                "max_mb": max(values),
                "max_over_after_1_min": round(max(values) / after_1_min, 3) if after_1_min else 0.0,
            }
        return out


def paced_wrk(
    wrk: str, url: str, *, tokens_file: Path, batch: int, rate: float, seconds: float, connections: int
) -> WrkResult:
    """wrk with bench/_burst_wrk.lua: `rate` requests/s of `batch` heartbeats each."""
    return run_wrk(
        wrk,
        url,
        tokens_file=tokens_file,
        batch=batch,
        seq_base=SEQ_BURST,
        seconds=seconds,
        connections=connections,
        script=BURST_SCRIPT,
        script_args=[f"{rate:.3f}"],
    )


def start_burst_node(stack: Stack) -> Node:
    web, port = start_web(
        stack, "web", "portal.asgi:application", 1, "--ws-per-message-deflate", "false", "--no-proxy-headers"
    )
    return start_node(stack, web, f"http://127.0.0.1:{port}{INGEST_PATH}", hostname="burst")


def duplicated_rows(stack: Stack) -> int:
    """Heartbeats of the burst stored more than once for one (device, seq)."""
    with stack.connect() as conn:
        row = conn.execute(
            "SELECT count(*) - count(DISTINCT (device_id, seq)) FROM fleet_heartbeat WHERE seq >= %s",
            (SEQ_BURST,),
        ).fetchone()
    return int(row[0]) if row else 0


def burst(
    stack: Stack, config: Config, node: Node, *, wrk: str, tokens_file: Path, rate: float
) -> dict[str, Any]:
    groups, worker = node.groups, node.worker
    with stack.connect() as conn:
        base_id, _ = inbox_state(conn)
        log_offset = worker.log_path.stat().st_size
        backlog, resident = Sampler(stack.postgres.url, base_id), ResidentSampler(groups)
        log(
            f"burst: {rate * config.batch:,.0f} heartbeats/s as {rate:,.1f} requests/s of {config.batch},"
            f" {config.connections} connections, {config.seconds:.0f}s"
        )
        cpu = CpuSample.begin(groups)
        backlog.start()
        resident.start()
        try:
            result = paced_wrk(
                wrk,
                node.url,
                tokens_file=tokens_file,
                batch=config.batch,
                rate=rate,
                seconds=config.seconds,
                connections=config.connections,
            )
            backlog_at_load_end = pending_heartbeats(conn)
            log(f"burst: {result.ok} of {result.requests} requests accepted; {backlog_at_load_end} waiting")
            last_stored = wait_drained(conn, timeout=DRAIN_TIMEOUT)
            wait_worker_idle(worker, log_offset, timeout=600)
            cpu_seconds = cpu.end()
        finally:
            backlog.halt.set()
            resident.halt.set()
            backlog.join()
            resident.join()
        stored = count_stored(conn, SEQ_BURST, SEQ_END)
    status = dict(result.status)
    shed = {code: status.pop(code) for code in ("429", "503") if code in status}
    accepted = result.ok * config.batch
    unanswered = sum(result.socket_errors.get(kind, 0) for kind in ("read", "write", "timeout"))
    log(f"burst: accepted {accepted} heartbeats, stored {stored}")
    return {
        "load": wrk_summary(result, config.batch),
        "offered_requests_per_s": round(result.rate, 1),
        "offered_heartbeats_per_s": round(result.rate * config.batch, 1),
        # Answered requests plus those sent and never answered (a read, write or timeout error).
        "sent_requests": result.requests + unanswered,
        "accepted_requests": result.ok,
        "shed_requests": shed,
        "other_status": status,
        "socket_errors": result.socket_errors,
        "accepted_heartbeats": accepted,
        "stored_heartbeats": stored,
        # A request answered after wrk stopped counting is stored but not counted as accepted:
        # stored can exceed accepted by at most connections × batch; it never hides a loss
        # larger than that.
        "lost_heartbeats": max(0, accepted - stored),
        "stored_minus_accepted": stored - accepted,
        "stored_minus_accepted_bound": config.connections * config.batch,
        "duplicated_rows": duplicated_rows(stack),
        "worker_tasks": worker_tasks(worker.log_path.read_bytes()[log_offset:].decode(errors="replace")),
        "backlog_at_load_end": backlog_at_load_end,
        "peak_backlog": max([backlog_at_load_end, *(s[2] for s in backlog.samples)]),
        "drain_after_load_s": round(last_stored - result.wall_end, 2),
        "resident_mb_sampled": resident.summary(),
        "peak_rss_mb": {name: peak_rss(pid) for name, pid in groups.items()},
        "cpu_seconds": cpu_seconds,
        "postgres_activity": backlog.summary(),
    }


def measure_s1a(stack: Stack, config: Config, node: Node, *, wrk: str, tokens_file: Path) -> dict[str, Any]:
    if config.s1a_rate is not None:
        source = "docs/performance.md, S1a" if config.s1a_rate == S1A_DOCUMENTED else "--s1a-rate"
        return {"source": source, "heartbeats_per_s": config.s1a_rate}
    s1a = run_scenario(
        stack,
        wrk=wrk,
        url=node.url,
        tokens_file=tokens_file,
        name="S1a",
        batch=1,
        seq_base=SEQ_S1A,
        seq_end=SEQ_S1B,
        seconds=config.s1a_seconds,
        connections=64,
        groups=node.groups,
        worker=node.worker,
    )
    return {"source": f"measured in this run ({config.s1a_seconds:.0f} s, this node)", **s1a}


def run(config: Config) -> dict[str, Any]:
    wrk = common.ensure_wrk()
    load_at_start = common.idle_load_average()
    with common.services("fleetport-burst-", keep_logs=config.keep_logs) as stack:
        stack.env = common.bench_env(stack.folder, stack.postgres.url, stack.redis.url)
        devices = prepare(stack, config.devices)
        tokens_file = stack.folder / "tokens.txt"
        tokens_file.write_text("".join(f"{d['token']}\n" for d in devices))
        node = start_burst_node(stack)
        log("warm-up")
        warm = run_wrk(
            wrk, node.url, tokens_file=tokens_file, batch=1, seq_base=SEQ_WARMUP, seconds=3, connections=16
        )
        if warm.ok == 0:
            raise RuntimeError(f"the warm-up was not accepted: {warm}\n{node.web.tail()}")
        with stack.connect() as conn:
            wait_drained(conn)
        wait_worker_idle(node.worker, 0)

        s1a = measure_s1a(stack, config, node, wrk=wrk, tokens_file=tokens_file)
        target = config.multiple * float(s1a["heartbeats_per_s"])
        result = burst(stack, config, node, wrk=wrk, tokens_file=tokens_file, rate=target / config.batch)
    load_at_end = os.getloadavg()
    offered = result["offered_heartbeats_per_s"] >= 0.95 * target
    checks = {
        "none_lost": result["lost_heartbeats"] == 0,
        "none_duplicated": result["duplicated_rows"] == 0,
        # The app's processes after a minute of overload: at most 25 % more by the end. (Redis
        # holds the queue and PostgreSQL's pages fill its shared buffers: reported, not judged.)
        "memory_bounded": all(
            result["resident_mb_sampled"].get(name, {}).get("max_over_after_1_min", 0.0) <= MEMORY_GROWTH
            for name in ("web", "worker", "beat")
        ),
        # The point is overload: the target offered, or (a load generator sharing 2 cores may
        # fall short of it) what was offered was already more than the node took.
        "overloaded": offered or sum(result["shed_requests"].values()) > 0,
    }
    return {
        "benchmark": "burst",
        "machine": common.machine_info(load_at_start, load_average_at_end=[round(v, 2) for v in load_at_end]),
        "config": {
            "burst_seconds": config.seconds,
            "multiple_of_s1a": config.multiple,
            "heartbeats_per_request": config.batch,
            "devices": config.devices,
            "connections": config.connections,
            "load_generator": "wrk, 2 threads, paced (bench/_burst_wrk.lua)",
            "web": "uvicorn portal.asgi:application, one process (the Procfile's options)",
            "worker": "celery worker --queues default,ingest --concurrency 2, plus celery beat",
            "settings": "portal.settings.dev, DEBUG=0, INGEST_DEVICE_RATE_PER_MINUTE=100000000",
        },
        "s1a": s1a,
        "target_heartbeats_per_s": round(target, 1),
        "offered_the_target": offered,
        "burst": result,
        "pass": checks,
        "all_pass": all(checks.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--seconds", type=float, default=600.0, help="burst time (default 600)")
    add("--multiple", type=float, default=10.0, help="times the S1a rate (default 10)")
    add("--batch", type=int, default=10, help="heartbeats per burst request (default 10)")
    add("--devices", type=int, default=1000, help="devices in the fleet (default 1000)")
    add("--connections", type=int, default=256, help="wrk connections in the burst (default 256)")
    add("--s1a-rate", type=float, default=S1A_DOCUMENTED, help="S1a in heartbeats/s (default 5314)")
    add("--measure-s1a", action="store_true", help="measure S1a on this node instead of --s1a-rate")
    add("--s1a-seconds", type=float, default=20.0, help="with --measure-s1a: its time (default 20)")
    add("--keep-logs", action="store_true", help="keep the processes' logs (folder on stderr)")
    args = parser.parse_args()
    config = Config(
        seconds=args.seconds,
        multiple=args.multiple,
        batch=args.batch,
        devices=args.devices,
        s1a_rate=None if args.measure_s1a else args.s1a_rate,
        s1a_seconds=args.s1a_seconds,
        connections=args.connections,
        keep_logs=args.keep_logs,
    )
    return common.run_main(lambda: run(config))


if __name__ == "__main__":
    sys.exit(main())
