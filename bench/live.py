"""Live benchmark S2/S3: heartbeat→browser latency with 1,000 sockets; idle sockets per ASGI process.

    .venv/bin/python bench/live.py [--quick] [--seconds N] [--s1a-rate R | --rate R]
                                   [--assets N] [--customers N] [--sockets N]
                                   [--http-connections N] [--s3-sockets N | --no-s3]
                                   [--keep-logs] [--web-workers N] [--worker-concurrency N]
                                   [--publish-only [--round-ms N]] [--profile | --cprofile]

Starts its own PostgreSQL and Redis (tests/services.py), migrates, and creates through the
project's services (bench/_live_setup.py) 100 customers with 10 assets each (--assets and
--customers change that; one device and token per asset), one customer viewer per customer
socket and a few support agents, each with a logged-in database session. Then the real
processes: uvicorn (one process, as the Procfile runs it, with its options; --web-workers N
for more; the project's ASGI application with one timestamp added, bench/_live_asgi.py), the
Celery worker
(queues default,ingest, concurrency 2 as in the Procfile, with timestamps,
bench/_live_worker.py) and beat.

- S2: 1,000 WebSocket clients (asyncio, this process; bench/_ws_client.py, a lean client
  that parses frames where they arrive and stamps each message then) on /ws/live/ with
  their session cookie and an allowed Origin: 990 customer viewers (9–10 per customer, each also
  subscribed to one asset of its customer) and 10 support agents. Heartbeats are POSTed at a
  fixed rate (default half of S1a: 500/s), the assets in turn, so each asset reports every
  assets ÷ rate seconds (1,000 ÷ 500: 2 s; --assets 4000 --rate 2000: 2 s too) and the
  per-socket coalescing (1/s per type and asset) never merges two of them unless the
  pipeline falls over a second behind. Each
  heartbeat carries a unique `temp_c`, which comes back in `last_values` of the asset.status
  (customer + staff sockets) and asset.values (the asset's subscribers) frames. Latency =
  frame received − moment just before the POST was written, one clock (time.time()) in one
  process; a frame that never came counts as infinitely late. The stages (view, waiting for
  the worker, the batch, publishing, the channel layer, web process → client) come from the
  timestamps of the traced worker and web processes and of the stored heartbeat rows.
- S2 with --publish-only: the live path alone. No POSTs; bench/_live_publish.py publishes the
  messages each planned heartbeat would make (the project's own message making and
  publish_many) in rounds like the worker's batches, and latency = publish → frame received.
- S3: one uvicorn process (`portal.asgi:application --workers 1` with the Procfile's options,
  i.e. without permessage-deflate) and as many idle sockets as asked (default 10,000, opened
  in steps): its VmRSS before, at each step and after; KiB per socket; sockets still
  answering a ping at the end. Then the same under stock uvicorn, which accepts the deflate
  offer, for comparison (--no-s3-compare skips it).

Prints one JSON object on stdout; progress goes to stderr. Everything it starts is stopped on
the way out, Ctrl-C and SIGTERM included. Wrap a run in `flock /tmp/fleetport-bench.lock` so it
never overlaps another benchmark on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import functools
import gc
import itertools
import json
import math
import os
import pstats
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import (
    ROOT,
    VENV_BIN,
    CpuSample,
    Stack,
    bench_env,
    cpu_seconds,
    idle_load_average,
    log,
    machine_info,
    migrate,
    peak_rss,
    raise_open_files_limit,
    resident_kib,
    run_main,
    services,
    socket_count,
    start_beat,
    start_web,
    wait_drained,
    wait_for_log,
)
from _ws_client import LeanSocket

from portal.runtime import settle_heap

INGEST_PATH = "/api/v1/ingest/heartbeats"
LIVE_PATH = "/ws/live/"
TARGETS = {
    "s2_p95_ms": 250.0,
    "s2_p99_ms": 500.0,
    "s3_sockets": 5_000,
    "s3_kib_per_socket": 64.0,
}


def procfile_web_flags() -> tuple[str, ...]:
    """The uvicorn options of the Procfile's `web:` line, less --host/--port (the bench's own)."""
    line = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
    words = line.split()
    words = words[words.index("portal.asgi:application") + 1 :]
    flags: list[str] = []
    skip = False
    for word in words:
        if skip:
            skip = False
        elif word in ("--host", "--port"):
            skip = True
        else:
            flags.append(word)
    return tuple(flags)


PROCFILE_WEB_FLAGS = procfile_web_flags()  # e.g. --ws-per-message-deflate false
DEFAULT_S1A_RATE = 1000.0  # bench/ingest.py S1a: 973-1,074 heartbeats/s end to end (the target)
SEQ_WARMUP, SEQ_TIMED = 1, 1_000
MARKERS = itertools.count(1)  # each heartbeat's temp_c, unique in the run (traces join on it)
FRAME_GRACE = 30.0  # after the inbox drained: how long missing frames may still come
COALESCE_SECONDS = 1.0  # portal.consumers.COALESCE_SECONDS


@dataclass
class Config:
    quick: bool
    seconds: float
    s1a_rate: float
    rate: float
    sockets: int
    staff_sockets: int
    customers: int
    assets_per_customer: int
    s3_sockets: int
    s3_step: int
    keep_logs: bool
    s3_compare: bool = True
    s3: bool = True  # --no-s3: S2 only
    py_spy: str | None = None  # profile the web and worker processes during the S2 load
    cprofile: bool = False  # cProfile the web process's event loop during the S2 load
    publish_only: bool = False  # the live path alone: bench/_live_publish.py instead of POSTs
    round_ms: float = 25.0  # --publish-only: a publish round every so often, like worker batches
    # S2 once per checkout, the web process served from it ("" this one; --web-trees): before
    # and after a change measured in one run, on one fleet, under the same load
    web_trees: tuple[str, ...] = ("",)
    http_connections: int = 32
    connect_concurrency: int = 50
    web_workers: int = 1  # the Procfile's web: one uvicorn process
    worker_concurrency: int = 2

    @property
    def customer_sockets(self) -> int:
        return self.sockets - self.staff_sockets


# ----------------------------------------------------------------------------- the fleet


@dataclass
class Asset:
    index: int
    customer: int  # index into the customers
    asset_id: str
    device_id: str
    token: str
    customer_id: str = ""
    seq: int = SEQ_WARMUP
    run_hours: float = 0.0


@dataclass
class Fleet:
    assets: list[Asset]  # interleaved over the customers: consecutive assets, different customers
    by_customer: list[list[Asset]]
    users: list[dict[str, Any]]
    cookie: str


def prepare(stack: Stack, config: Config) -> Fleet:
    python = str(VENV_BIN / "python")
    migrate(stack.env)
    customer_users = max(config.customer_sockets, config.s3_sockets if config.s3 else 0)
    log(
        f"creating {config.customers} customers × {config.assets_per_customer} assets, "
        f"{customer_users} customer viewers and {config.staff_sockets} support agents with sessions"
    )
    argv = [
        *(python, "bench/_live_setup.py", "--customers", str(config.customers)),
        *("--assets-per-customer", str(config.assets_per_customer)),
        *("--customer-users", str(customer_users), "--staff-users", str(config.staff_sockets)),
    ]
    created = subprocess.run(argv, cwd=ROOT, env=stack.env, capture_output=True, text=True)  # noqa: S603
    if created.returncode != 0:
        raise RuntimeError(f"setup failed:\n{created.stderr[-3000:]}")
    log(created.stderr.strip().replace("\n", "; "))
    data = json.loads(created.stdout)
    by_customer: list[list[Asset]] = []
    for c, customer in enumerate(data["customers"]):
        by_customer.append(
            [
                Asset(
                    index=0,
                    customer=c,
                    asset_id=a["asset"],
                    device_id=a["device"],
                    token=a["token"],
                    customer_id=customer["customer"],
                )
                for a in customer["assets"]
            ]
        )
    assets = [by_customer[c][a] for a in range(config.assets_per_customer) for c in range(config.customers)]
    for index, asset in enumerate(assets):
        asset.index = index
    return Fleet(assets=assets, by_customer=by_customer, users=data["users"], cookie=data["session_cookie"])


# ----------------------------------------------------------------------------- HTTP (devices)


class HttpPool:
    """Keep-alive HTTP/1.1 connections for POSTing heartbeats, at most `size` at once.

    A minimal client on asyncio streams (the project has no async HTTP client, and the
    benchmark needs the send moment in the same event loop and clock as the sockets). A
    connection idle for more than IDLE_SECONDS is dropped (uvicorn closes keep-alive
    connections after 5 s); a reused one that the server closed meanwhile is retried once on a
    new connection, with a new send moment."""

    IDLE_SECONDS = 2.0

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.slots = asyncio.Semaphore(size)
        self.opened = 0
        self.retried = 0

    async def _connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bool]:
        while self.idle:
            reader, writer, used = self.idle.pop()
            if time.monotonic() - used < self.IDLE_SECONDS:
                return reader, writer, True
            writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.opened += 1
        return reader, writer, False

    async def post(self, path: str, token: str, body: bytes) -> tuple[int, float, float]:
        """(status, time just before the request was written, time the answer was read)."""
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Authorization: Device {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        async with self.slots:
            for attempt in range(2):
                reader, writer, reused = await self._connection()
                try:
                    sent = time.time()
                    writer.write(head + body)
                    answer = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    writer.close()
                    partial = getattr(exc, "partial", b"")
                    if reused and not partial and attempt == 0:
                        self.retried += 1
                        continue  # the server had closed this idle connection
                    raise
                except BaseException:
                    writer.close()
                    raise
                break
            status = int(answer.split(b" ", 2)[1])
            length, keep = 0, True
            for line in answer.lower().split(b"\r\n")[1:]:
                if line.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
                elif line.startswith(b"connection:") and b"close" in line:
                    keep = False
            try:
                await reader.readexactly(length)
            except BaseException:
                writer.close()
                raise
            acked = time.time()
            if keep:
                self.idle.append((reader, writer, time.monotonic()))
            else:
                writer.close()
            return status, sent, acked

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


@dataclass
class Sent:
    """One heartbeat: which asset, its marker (temp_c), and when it was sent and answered."""

    marker: int
    asset: Asset
    seq: int
    timed: bool
    due: float = 0.0
    sent: float = 0.0
    acked: float = 0.0
    status: int = 0


def heartbeat_body(asset: Asset, seq: int, marker: int) -> bytes:
    asset.run_hours += 0.01
    item = {
        "seq": seq,
        "ts": datetime.now(UTC).isoformat(),
        "status": "ok",
        "metrics": {
            "run_hours": round(asset.run_hours, 2),
            "energy_kwh": round(asset.run_hours * 3.5, 2),
            "pressure_bar": 7.1,
            "temp_c": marker,
        },
        "fault_code": None,
    }
    return json.dumps(item).encode()


async def send_heartbeat(pool: HttpPool, record: Sent) -> None:
    try:
        body = heartbeat_body(record.asset, record.seq, record.marker)
        record.status, record.sent, record.acked = await pool.post(INGEST_PATH, record.asset.token, body)
    except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
        record.status = -1
        log(f"heartbeat {record.marker}: {type(exc).__name__}: {exc}")


async def drive(pool: HttpPool, records: list[Sent], rate: float) -> float:
    """Send the heartbeats open-loop at `rate` per second (each at its due time, whatever the
    answers to the previous ones). Returns the start time."""
    start = time.time() + 0.05
    tasks: list[asyncio.Task[None]] = []
    for n, record in enumerate(records):
        record.due = start + n / rate
        delay = record.due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send_heartbeat(pool, record)))
    await asyncio.gather(*tasks)
    return start


# ----------------------------------------------------------------------------- WebSockets


@dataclass
class LiveSocket:
    index: int
    ws: LeanSocket
    customer: int | None  # None: a support agent's socket (the staff group)
    subscribed: str | None = None  # asset id


class Frames:
    """Every frame the S2 sockets receive: asset events are matched to heartbeats by marker."""

    def __init__(self) -> None:
        self.markers: dict[int, Sent] = {}
        # marker -> [(socket index, message type, received at)]
        self.deliveries: dict[int, list[tuple[int, str, float]]] = defaultdict(list)
        self.by_type: Counter[str] = Counter()
        self.unmatched = 0
        self.closing = False  # set when the benchmark closes its sockets itself
        self.dropped: dict[int, tuple[float, int | None]] = {}  # socket -> (when, close code)
        self.last_frame = 0.0
        self.websocket_frames = 0  # frames, each one message or an array of them

    def add(self, socket: int, raw: str | bytes, at: float) -> None:
        """A frame: one message, or an array of the messages the server had ready together."""
        self.last_frame = at
        self.websocket_frames += 1
        data = orjson.loads(raw)
        for message in data if isinstance(data, list) else (data,):
            kind = str(message.get("type"))
            self.by_type[kind] += 1
            if kind in ("asset.status", "asset.values"):
                marker = (message.get("last_values") or {}).get("temp_c")
                if isinstance(marker, int) and marker in self.markers:
                    self.deliveries[marker].append((socket, kind, at))
                else:
                    self.unmatched += 1


async def read_frames(sock: LiveSocket, frames: Frames) -> None:
    """Every message of the socket to `frames`, stamped as its bytes arrive, until it closes."""
    sock.ws.hand_over(functools.partial(frames.add, sock.index))
    await sock.ws.closed
    if not frames.closing:  # the server closed it, or it broke
        frames.dropped[sock.index] = (time.time(), sock.ws.close_code)


async def open_socket(port: int, cookie: str, session: str) -> ClientConnection:
    """A browser-like idle socket (S3): session cookie, same-site Origin, permessage-deflate
    offered (as browsers do; the websockets client offers it by default), no client pings."""
    return await connect(
        f"ws://127.0.0.1:{port}{LIVE_PATH}",
        origin=Origin(f"http://127.0.0.1:{port}"),
        additional_headers={"Cookie": f"{cookie}={session}"},
        open_timeout=60,
        ping_interval=None,
        close_timeout=2,
        max_queue=256,
    )


async def expect(ws: LeanSocket | ClientConnection, kind: str, timeout: float = 30.0) -> dict[str, Any]:
    """Read until a message of type `kind` (others, e.g. an offline sweep's status, are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = max(0.01, deadline - time.monotonic())
        raw = await ws.recv(left) if isinstance(ws, LeanSocket) else await asyncio.wait_for(ws.recv(), left)
        data = orjson.loads(raw)
        for message in data if isinstance(data, list) else (data,):
            if message.get("type") == kind:
                return dict(message)
            if message.get("type") == "error":
                raise RuntimeError(f"socket error while waiting for {kind}: {message}")


async def bounded(concurrency: int, jobs: Iterable[Awaitable[Any]]) -> list[Any]:
    """Run awaitables with at most `concurrency` at once; results (or exceptions) in order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Awaitable[Any]) -> Any:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(job) for job in jobs), return_exceptions=True))


class LoopLag:
    """How late this process's event loop wakes up (a busy client inflates latencies)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.05)
            self.samples.append(time.monotonic() - before - 0.05)

    def start(self) -> None:
        self.samples.clear()
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, float]:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        return {k: v for k, v in percentiles([s * 1000 for s in self.samples]).items() if k != "count"}


class GcPauses:
    """This process's garbage-collector pauses (each stops the loop: frames wait, latency grows)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((info["generation"], time.perf_counter() - self._started))

    def start(self) -> None:
        self.pauses.clear()
        gc.callbacks.append(self._callback)

    def stop(self) -> dict[str, Any]:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._callback)
        by_generation: dict[str, Any] = {}
        for generation in (0, 1, 2):
            took = [p for g, p in self.pauses if g == generation]
            by_generation[f"gen{generation}"] = {
                "collections": len(took),
                "total_ms": round(sum(took) * 1000, 1),
                "max_ms": round(max(took, default=0.0) * 1000, 1),
            }
        return by_generation


# ----------------------------------------------------------------------------- statistics


def percentiles(values: list[float], missing: int = 0) -> dict[str, float]:
    """p50/p95/p99/max (nearest rank) in the values' unit; `missing` values count as infinite."""
    ordered = sorted(values) + [math.inf] * missing
    if not ordered:
        return {"count": 0}

    def rank(q: float) -> float:
        value = ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]
        return round(value, 1) if math.isfinite(value) else math.inf

    return {
        "count": len(ordered),
        "p50": rank(0.50),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": rank(1.0),
    }


def json_safe(value: Any) -> Any:
    """JSON has no Infinity: an infinite percentile (frames missing) prints as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


# ----------------------------------------------------------------------------- profiling


def start_profiles(py_spy: str, targets: dict[str, int], seconds: float, folder: Path) -> list[Any]:
    """py-spy record (raw collapsed stacks of the threads holding the GIL, i.e. running Python;
    subprocesses included) on each named process tree."""
    started = []
    for name, pid in targets.items():
        argv = [
            *(py_spy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--nolineno", "--gil"),
            *("--format", "raw", "--rate", "100", "--duration", str(max(1, round(seconds)))),
            *("--output", str(folder / f"profile-{name}.txt")),
        ]
        started.append(
            subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        )
    return started


def summarize_profile(path: Path, top: int = 25) -> dict[str, Any]:
    """Samples of Python running (threads holding the GIL; C code called from Python, e.g. zlib,
    counts for its caller) per function: where the process itself was (self) and what was on
    the stack (inclusive), as a share of all samples."""
    self_count: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = [f for f in stack.split(";") if not f.startswith(("process ", "thread "))]
            if not frames:
                continue
            total += count
            self_count[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count

    def shares(counter: Counter[str]) -> dict[str, float]:
        return {k: round(100 * v / total, 1) for k, v in counter.most_common(top)} if total else {}

    return {"samples": total, "self_percent": shares(self_count), "inclusive_percent": shares(inclusive)}


def summarize_cprofile(folder: Path, pid: int, top: int = 30) -> dict[str, Any]:
    """The web process's cProfile (bench/_live_asgi.py) of the load: the functions with the
    most time of their own and the most time below them, as a share of the profiled time.
    cProfile's own cost per call inflates small functions; compare shares, not times."""
    path = folder / f"web-{pid}.prof"
    for _ in range(50):
        if path.exists():
            break
        time.sleep(0.1)
    if not path.exists():
        return {"error": f"no profile at {path}"}
    loaded: Any = pstats.Stats(str(path))
    stats: dict[Any, Any] = loaded.stats
    total = sum(tottime for _, _, tottime, _, _ in stats.values()) or 1.0

    def name(key: tuple[str, int, str]) -> str:
        filename, line, function = key
        return f"{Path(filename).name}:{line}:{function}"

    def shares(index: int) -> dict[str, Any]:
        ranked = sorted(stats.items(), key=lambda item: item[1][index], reverse=True)[:top]
        return {name(key): [round(100 * value[index] / total, 1), value[1]] for key, value in ranked}

    return {
        "profiled_seconds": round(total, 2),
        "self_percent_and_calls": shares(2),
        "inclusive_percent_and_calls": shares(3),
    }


# ----------------------------------------------------------------------------- S2


def wait_drained_at(url: str) -> float:
    """When the last heartbeat was seen stored, in time.time() (the traces' clock)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return wait_drained(conn, clock=time.time)


def stored_received_at(url: str) -> dict[tuple[str, int], float]:
    """When the ingest view accepted each timed heartbeat (its inbox row's received_at)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT device_id::text, seq, extract(epoch FROM received_at)::float8 FROM fleet_heartbeat"
            " WHERE seq >= %s",
            (SEQ_TIMED,),
        ).fetchall()
    return {(device, int(seq)): float(at) for device, seq, at in rows}


def read_traces(folder: Path, prefix: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in sorted(folder.glob(f"{prefix}-*.jsonl")):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
    return records


class TraceIndex:
    """Per asset, the traced batches / publishes that contained it, by start time."""

    def __init__(self, records: list[dict[str, Any]], kind: str) -> None:
        self.by_asset: dict[str, list[tuple[float, dict[str, Any]]]] = defaultdict(list)
        for record in records:
            if record.get("kind") == kind:
                for asset in record["assets"]:
                    self.by_asset[asset].append((record["start"], record))
        for entries in self.by_asset.values():
            entries.sort(key=lambda entry: entry[0])

    def first_after(self, asset: str, moment: float) -> dict[str, Any] | None:
        entries = self.by_asset.get(asset, [])
        at = bisect.bisect_left(entries, moment, key=lambda entry: entry[0])
        return entries[at][1] if at < len(entries) else None

    def first_ending_after(self, asset: str, moment: float) -> dict[str, Any] | None:
        """The first record with this asset that ended after `moment`: for a batch, the one that
        stored a row accepted at `moment` (a device's batches never overlap; a batch may have
        started before the row was accepted, while it waited for the device's lock)."""
        for _, record in self.by_asset.get(asset, []):
            if record["end"] > moment:
                return record
        return None


def frame_latencies(
    timed: list[Sent], frames: Frames, recipients: dict[str, tuple[list[int], list[int]]]
) -> dict[str, Any]:
    """Latency of every expected frame of the accepted heartbeats, in ms. A frame that never
    came counts as infinitely late; it is classed as lost on a socket the server dropped, or
    superseded (the socket got a later heartbeat of the same asset instead: merged into one
    message by a batch, or coalesced by the consumer), or simply missing."""
    accepted = [r for r in timed if r.status == 202]
    delivered: set[tuple[int, str, int]] = {
        (socket, kind, marker) for marker, got in frames.deliveries.items() for socket, kind, _ in got
    }
    later: dict[int, list[int]] = {}  # marker -> markers of the same asset's later heartbeats
    by_asset: dict[str, list[Sent]] = defaultdict(list)
    for record in accepted:
        by_asset[record.asset.asset_id].append(record)
    for records in by_asset.values():
        for n, record in enumerate(records):
            later[record.marker] = [r.marker for r in records[n + 1 :]]
    latencies: dict[str, list[float]] = defaultdict(list)
    open_latencies: list[float] = []
    first_frame, last_frame = [], []
    missing: Counter[str] = Counter()
    duplicates = 0
    for record in accepted:
        status_to, values_to = recipients[record.asset.asset_id]
        got = frames.deliveries.get(record.marker, [])
        seen = Counter((socket, kind) for socket, kind, _ in got)
        duplicates += sum(n - 1 for n in seen.values() if n > 1)
        for socket, kind, at in got:
            latencies[kind].append((at - record.sent) * 1000)
            if socket not in frames.dropped:
                open_latencies.append((at - record.sent) * 1000)
        expected = [(s, "asset.status") for s in status_to] + [(s, "asset.values") for s in values_to]
        for socket, kind in expected:
            if (socket, kind) in seen:
                continue
            missing[kind] += 1
            if socket in frames.dropped:
                missing["on_sockets_the_server_dropped"] += 1
            elif any((socket, kind, m) in delivered for m in later[record.marker]):
                missing["superseded_by_a_later_heartbeat"] += 1
            else:
                missing["on_open_sockets"] += 1
        if got:
            first_frame.append((min(at for _, _, at in got) - record.sent) * 1000)
            if len(seen) >= len(expected):
                last_frame.append((max(at for _, _, at in got) - record.sent) * 1000)
    every = latencies["asset.status"] + latencies["asset.values"]
    lost = missing["asset.status"] + missing["asset.values"]
    return {
        "latency_ms": percentiles(every, lost),
        "latency_ms_sockets_not_dropped": percentiles(
            open_latencies, missing["superseded_by_a_later_heartbeat"] + missing["on_open_sockets"]
        ),
        "latency_ms_by_type": {
            kind: percentiles(latencies[kind], missing[kind]) for kind in ("asset.status", "asset.values")
        },
        "latency_ms_per_heartbeat": {
            "first_frame": percentiles(first_frame, len(accepted) - len(first_frame)),
            "last_frame_all_sockets": percentiles(last_frame, len(accepted) - len(last_frame)),
        },
        "frames_expected": sum(
            len(v[0]) + len(v[1]) for v in (recipients[r.asset.asset_id] for r in accepted)
        ),
        "frames_received": len(every),
        "frames_missing": dict(missing),
        "frames_duplicated": duplicates,
    }


def stage_breakdown(
    timed: list[Sent], frames: Frames, sockets: list[LiveSocket], trace_dir: Path, url: str
) -> dict[str, Any]:
    """Split each timed heartbeat's way to its asset.values frame into stages, in ms."""
    received_at = stored_received_at(url)
    worker = read_traces(trace_dir, "worker")
    batches, publishes = TraceIndex(worker, "batch"), TraceIndex(worker, "publish")
    consumer_at = {
        (r["asset"], r["marker"]): r["at"]
        for r in read_traces(trace_dir, "web")
        if r.get("marker") is not None
    }
    stages: dict[str, list[float]] = defaultdict(list)
    incomplete = 0
    for record in timed:
        accepted = received_at.get((record.asset.device_id, record.seq))
        values_frames = [
            at for _, kind, at in frames.deliveries.get(record.marker, []) if kind == "asset.values"
        ]
        consumer = consumer_at.get((record.asset.asset_id, record.marker))
        if accepted is None or not values_frames or consumer is None:
            incomplete += 1
            continue
        batch = batches.first_ending_after(record.asset.asset_id, accepted)
        publish = publishes.first_after(record.asset.asset_id, batch["start"]) if batch else None
        if batch is None or publish is None:
            incomplete += 1
            continue
        frame = min(values_frames)
        parts = {
            "1_post_to_view_accepted": accepted - record.sent,
            "2_accepted_to_batch_claimed": batch["start"] - accepted,
            "3_batch_claimed_to_committed": publish["commit"] - batch["start"],
            "4_committed_to_publish_start": publish["start"] - publish["commit"],
            "5_publish_start_to_web_process": consumer - publish["start"],
            "6_web_process_to_client_frame": frame - consumer,
            "total_post_to_values_frame": frame - record.sent,
            "post_to_202_answer": record.acked - record.sent,
            "publish_call_duration": publish["end"] - publish["start"],
        }
        for name, seconds in parts.items():
            stages[name].append(seconds * 1000)
    batch_records = [r for r in worker if r.get("kind") == "batch"]
    publish_records = [r for r in worker if r.get("kind") == "publish"]
    timed_start = min((r.sent for r in timed), default=0.0)
    in_window = [r for r in batch_records if r["start"] >= timed_start]
    return {
        "heartbeats_traced": len(timed) - incomplete,
        "heartbeats_incomplete": incomplete,
        "stages_ms": {name: percentiles(values) for name, values in sorted(stages.items())},
        "worker_batches_during_load": {
            "batches": len(in_window),
            "rows_per_batch": percentiles([float(r["rows"]) for r in in_window]),
            "batch_seconds_ms": percentiles([(r["end"] - r["start"]) * 1000 for r in in_window]),
            "messages_per_publish": percentiles(
                [float(r["messages"]) for r in publish_records if r["start"] >= timed_start]
            ),
        },
    }


def expected_recipients(fleet: Fleet, sockets: list[LiveSocket]) -> dict[str, tuple[list[int], list[int]]]:
    """asset id -> (sockets that get its asset.status, sockets that get its asset.values)."""
    by_customer: dict[int | None, list[int]] = defaultdict(list)
    subscribers: dict[str, list[int]] = defaultdict(list)
    for sock in sockets:
        by_customer[sock.customer].append(sock.index)
        if sock.subscribed:
            subscribers[sock.subscribed].append(sock.index)
    return {
        asset.asset_id: (by_customer[asset.customer] + by_customer[None], subscribers[asset.asset_id])
        for asset in fleet.assets
    }


async def connect_s2_sockets(port: int, fleet: Fleet, config: Config) -> list[LiveSocket]:
    customer_users = [u for u in fleet.users if u["customer"] is not None][: config.customer_sockets]
    staff_users = [u for u in fleet.users if u["customer"] is None][: config.staff_sockets]

    async def one(index: int, user: dict[str, Any]) -> LiveSocket:
        ws = await LeanSocket.open(
            port, LIVE_PATH, origin=f"http://127.0.0.1:{port}", cookie=f"{fleet.cookie}={user['session']}"
        )
        await expect(ws, "hello")
        sock = LiveSocket(index=index, ws=ws, customer=user["customer"])
        if sock.customer is not None:
            # Viewer k of a customer watches asset k (mod assets per customer) of it: an asset page.
            own = fleet.by_customer[sock.customer]
            asset = own[(index // config.customers) % len(own)]
            ws.send_text(json.dumps({"type": "subscribe", "topic": "asset", "id": asset.asset_id}))
            await expect(ws, "subscribed")
            sock.subscribed = asset.asset_id
        return sock

    users = customer_users + staff_users
    results = await bounded(config.connect_concurrency, (one(i, u) for i, u in enumerate(users)))
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(users)} S2 sockets failed to open: {failures[0]!r}")
    return [r for r in results if isinstance(r, LiveSocket)]


async def wait_frames(frames: Frames, expected: dict[int, int], deadline: float, quiet: float = 5.0) -> None:
    """Until every timed heartbeat got all its frames, or no frame came for `quiet` seconds,
    or the deadline."""
    while time.time() < deadline:
        if all(len(frames.deliveries.get(m, ())) >= n for m, n in expected.items()):
            return
        if time.time() - frames.last_frame > quiet:
            return
        await asyncio.sleep(0.1)


async def publish_directly(stack: Stack, records: list[Sent], config: Config, name: str) -> float:
    """--publish-only: the records' messages published by bench/_live_publish.py (the project's
    message making and publish_many, in rounds every config.round_ms) at config.rate; each
    record's sent (and acked) moment is its round's publish moment. Returns the publisher's
    CPU-seconds."""
    plan_path, sent_path = stack.folder / f"publish-{name}.json", stack.folder / f"publish-{name}.jsonl"
    plan = {
        "rate": config.rate,
        "round_ms": config.round_ms,
        "items": [[r.marker, r.asset.asset_id, r.asset.customer_id] for r in records],
    }
    plan_path.write_text(json.dumps(plan))
    argv = [str(VENV_BIN / "python"), "bench/_live_publish.py", str(plan_path), str(sent_path)]
    process = await asyncio.create_subprocess_exec(*argv, cwd=ROOT, env=stack.env)
    if await process.wait() != 0:
        raise RuntimeError("bench/_live_publish.py failed")
    by_marker = {r.marker: r for r in records}
    cpu = 0.0
    for line in sent_path.read_text().splitlines():
        entry = json.loads(line)
        if "cpu_seconds" in entry:
            cpu = float(entry["cpu_seconds"])
            continue
        for marker in entry["markers"]:
            record = by_marker[marker]
            record.due = record.sent = record.acked = float(entry["sent"])
            record.status = 202
    return cpu


async def scenario_s2(
    stack: Stack,
    port: int,
    fleet: Fleet,
    config: Config,
    groups: dict[str, int],
    profile_targets: dict[str, int],
) -> dict[str, Any]:
    log(f"S2: opening {config.sockets} sockets ({config.staff_sockets} staff)")
    opened = time.monotonic()
    sockets = await connect_s2_sockets(port, fleet, config)
    connect_seconds = time.monotonic() - opened
    log(f"S2: {len(sockets)} sockets open and subscribed in {connect_seconds:.1f}s")
    frames = Frames()
    readers = [asyncio.create_task(read_frames(sock, frames)) for sock in sockets]
    recipients = expected_recipients(fleet, sockets)
    pool = HttpPool(port, config.http_connections)

    def plan(count: int, *, timed: bool) -> list[Sent]:
        records = []
        for n in range(count):
            asset = fleet.assets[n % len(fleet.assets)]
            # A later S2 of the same run (--web-trees) goes on from the last seq: never a replay.
            asset.seq = max(asset.seq + 1, SEQ_TIMED) if timed or asset.seq >= SEQ_TIMED else SEQ_WARMUP
            records.append(Sent(marker=next(MARKERS), asset=asset, seq=asset.seq, timed=timed))
        for record in records:
            frames.markers[record.marker] = record
        return records

    try:
        # Warm-up: every asset reports once (first status change, connection pools, caches).
        warm = plan(len(fleet.assets), timed=False)
        log(f"S2: warm-up, one heartbeat per asset ({len(warm)}) at {config.rate * 2:.0f}/s")
        if config.publish_only:
            await publish_directly(stack, warm, config, "warm-up")
        else:
            await drive(pool, warm, config.rate * 2)
            await asyncio.to_thread(wait_drained_at, stack.postgres.url)
        await asyncio.sleep(2.0)
        bad = sum(1 for r in warm if r.status != 202)
        if bad:
            raise RuntimeError(f"{bad} warm-up heartbeats were not accepted")

        count = max(1, round(config.rate * config.seconds))
        timed = plan(count, timed=True)
        expected = {
            r.marker: len(recipients[r.asset.asset_id][0]) + len(recipients[r.asset.asset_id][1])
            for r in timed
        }
        interval = len(fleet.assets) / config.rate
        log(
            f"S2: {count} heartbeats at {config.rate:g}/s over {len(fleet.assets)} assets "
            f"(each asset every {interval:.1f}s); {sum(expected.values())} frames expected"
        )
        profiles = (
            start_profiles(config.py_spy, profile_targets, config.seconds, stack.folder)
            if config.py_spy
            else []
        )
        # The client's own heap (every frame's record so far) out of the collector's walks, as
        # the web process does at its start (portal.runtime); its pauses are reported.
        settle_heap()
        gc_pauses = GcPauses()
        gc_pauses.start()
        lag = LoopLag()
        lag.start()
        cpu = CpuSample.begin(groups)
        self_cpu = resource.getrusage(resource.RUSAGE_SELF)
        load_average = os.getloadavg()
        if config.cprofile:
            os.kill(profile_targets["web"], signal.SIGUSR1)
        if config.publish_only:
            start = time.time()
            cpu_publisher = await publish_directly(stack, timed, config, "timed")
        else:
            start = await drive(pool, timed, config.rate)
        load_end = time.time()
        if config.cprofile:
            os.kill(profile_targets["web"], signal.SIGUSR2)
        load_average_end = os.getloadavg()
        drained = (
            load_end if config.publish_only else await asyncio.to_thread(wait_drained_at, stack.postgres.url)
        )
        expected = {m: n for m, n in expected.items() if frames.markers[m].status == 202}
        await wait_frames(frames, expected, time.time() + FRAME_GRACE)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu_seconds = cpu.end()
        clients = round(usage.ru_utime + usage.ru_stime - self_cpu.ru_utime - self_cpu.ru_stime, 2)
        cpu_seconds["clients_this_process"] = clients
        if config.publish_only:
            cpu_seconds["publisher_process"] = cpu_publisher
        cpu_seconds["outside_benchmark"] = round(max(0.0, cpu_seconds["outside_benchmark"] - clients), 2)
        loop_lag = await lag.stop()
        client_gc = gc_pauses.stop()
        for profile in profiles:
            await asyncio.to_thread(profile.wait)
        log(f"S2: load done in {load_end - start:.1f}s, drained {drained - load_end:.1f}s later")
    finally:
        pool.close()
        frames.closing = True
        await bounded(200, (sock.ws.close() for sock in sockets))
        await asyncio.gather(*readers, return_exceptions=True)

    latency = frame_latencies(timed, frames, recipients)
    overall = latency["latency_ms"]
    log(f"S2: frame latency p50 {overall.get('p50')} p95 {overall.get('p95')} p99 {overall.get('p99')} ms")
    breakdown = (
        None
        if config.publish_only
        else stage_breakdown(timed, frames, sockets, stack.folder / "trace", stack.postgres.url)
    )
    answers = Counter(str(r.status) for r in timed)
    post_ms = [(r.acked - r.sent) * 1000 for r in timed if r.status == 202]
    send_lag_ms = [(r.sent - r.due) * 1000 for r in timed if r.sent]
    status_sockets = [len(v[0]) for v in recipients.values()]
    viewers = Counter(s.customer for s in sockets if s.customer is not None)
    subscribers = [len(v[1]) for v in recipients.values()]
    return {
        "sockets": len(sockets),
        "sockets_connect_seconds": round(connect_seconds, 1),
        "fan_out": {
            "customer_viewer_sockets": sum(1 for s in sockets if s.customer is not None),
            "support_agent_sockets": sum(1 for s in sockets if s.customer is None),
            "customers": config.customers,
            "assets": len(fleet.assets),
            "viewer_sockets_per_customer": f"{min(viewers.values())}-{max(viewers.values())}",
            "each_viewer_subscribed_to": "one asset of its customer (asset k mod assets per customer)",
            "asset_status_sockets_per_heartbeat": f"{min(status_sockets)}-{max(status_sockets)}"
            " (the asset's customer's viewers + every support agent)",
            "asset_values_sockets_per_heartbeat": f"{min(subscribers)}-{max(subscribers)} (its subscribers)",
            "frames_planned": sum(expected.values()),
            "frames_per_s": round(sum(expected.values()) / max(0.001, load_end - start), 1),
        },
        "rate": {
            "s1a_rate_assumed": config.s1a_rate,
            "heartbeats_per_s_asked": config.rate,
            "heartbeats": len(timed),
            "seconds": round(load_end - start, 2),
            "heartbeats_per_s_sent": round(len(timed) / max(0.001, load_end - start), 1),
            "seconds_between_heartbeats_of_one_asset": round(len(fleet.assets) / config.rate, 1),
            "coalescing": "none unless the pipeline falls over a window behind: each asset reports "
            f"at most every {2 * COALESCE_SECONDS:g} s, twice the consumers' coalescing window"
            if len(fleet.assets) / config.rate >= 2 * COALESCE_SECONDS
            else "POSSIBLE: assets report within the coalescing window",
            "send_lag_behind_schedule_ms": percentiles(send_lag_ms),
        },
        "answers": dict(answers),
        "http_connections_opened": pool.opened,
        "http_stale_connections_retried": pool.retried,
        "post_latency_ms": percentiles(post_ms),
        **latency,
        "frames_not_matched": frames.unmatched,
        "frames_by_type": dict(frames.by_type),
        "websocket_frames": frames.websocket_frames,
        "sockets_dropped_by_server": len(frames.dropped),
        "dropped_close_codes": dict(Counter(str(code) for _, code in frames.dropped.values())),
        "drain_after_load_s": round(drained - load_end, 2),
        "client_loop_lag_ms": loop_lag,
        "client_gc_pauses": client_gc,
        "load_average_at_start": [round(v, 2) for v in load_average],
        "load_average_at_load_end": [round(v, 2) for v in load_average_end],
        "cpu_seconds": cpu_seconds,
        "cpu_per_heartbeat": cpu_per_heartbeat(cpu_seconds, len(timed), config.rate),
        "breakdown": breakdown,
        "profile": {name: summarize_profile(stack.folder / f"profile-{name}.txt") for name in profile_targets}
        if config.py_spy
        else None,
        "cprofile_web": summarize_cprofile(stack.folder / "trace", profile_targets["web"])
        if config.cprofile
        else None,
    }


def cpu_per_heartbeat(cpu_seconds: dict[str, float], heartbeats: int, rate: float) -> dict[str, Any]:
    """CPU-ms per timed heartbeat of each of our processes (from the load's start until every
    frame came: the heartbeat's whole way), and the cores that takes at the asked rate: above
    the machine's cores, the rate cannot be carried whatever the latency."""
    ours = ("web", "worker", "postgres", "redis", "clients_this_process", "publisher_process")
    per = {
        name: round(cpu_seconds[name] * 1000 / max(1, heartbeats), 3) for name in ours if name in cpu_seconds
    }
    total = sum(per.values())
    return {
        "ms": per,
        "ms_total": round(total, 3),
        "cores_at_asked_rate": round(total * rate / 1000, 2),
        "cores_of_machine": os.cpu_count(),
    }


# ----------------------------------------------------------------------------- S3


async def scenario_s3(port: int, pid: int, fleet: Fleet, config: Config) -> dict[str, Any]:
    users = [u for u in fleet.users if u["customer"] is not None]
    sockets: list[ClientConnection] = []
    errors: Counter[str] = Counter()

    async def one(n: int) -> ClientConnection:
        ws = await open_socket(port, fleet.cookie, users[n % len(users)]["session"])
        await expect(ws, "hello")
        return ws

    # Warm-up: the first sockets load the code paths, the DB pool and the channel layer.
    warm = await bounded(10, (one(n) for n in range(10)))
    first = next((ws for ws in warm if isinstance(ws, ClientConnection)), None)
    response = first.response if first is not None else None
    extensions = response.headers.get("Sec-WebSocket-Extensions") if response is not None else None
    await bounded(10, (ws.close() for ws in warm if isinstance(ws, ClientConnection)))
    await asyncio.sleep(2.0)
    before = resident_kib(pid)
    log(f"S3: server RSS before {before / 1024:.1f} MiB; opening up to {config.s3_sockets} idle sockets")
    steps = [{"sockets": 0, "rss_kib": before, "server_sockets": socket_count(pid)}]
    started = time.monotonic()
    while len(sockets) < config.s3_sockets:
        batch = min(config.s3_step, config.s3_sockets - len(sockets))
        offset = len(sockets)
        results = await bounded(config.connect_concurrency, (one(offset + n) for n in range(batch)))
        for result in results:
            if isinstance(result, ClientConnection):
                sockets.append(result)
            else:
                errors[f"{type(result).__name__}: {result}"[:120]] += 1
        await asyncio.sleep(1.0)
        step = {"sockets": len(sockets), "rss_kib": resident_kib(pid), "server_sockets": socket_count(pid)}
        steps.append(step)
        log(f"S3: {len(sockets)} sockets, server RSS {step['rss_kib'] / 1024:.1f} MiB")
        if sum(errors.values()) > batch // 10:
            log(f"S3: stopping: {sum(errors.values())} sockets failed to open")
            break
    connect_seconds = time.monotonic() - started
    # Held idle: the server's own pings (every 20 s) are the only traffic.
    idle_cpu_start = cpu_seconds(pid)
    await asyncio.sleep(10.0)
    idle_cpu = cpu_seconds(pid) - idle_cpu_start
    after = resident_kib(pid)
    sample = random.Random(4).sample(sockets, min(200, len(sockets)))

    async def ping(ws: ClientConnection) -> bool:
        await ws.send(json.dumps({"type": "ping"}))
        await expect(ws, "pong", timeout=20)
        return True

    answered = sum(1 for r in await bounded(50, (ping(ws) for ws in sample)) if r is True)
    alive = sum(1 for ws in sockets if ws.state.name == "OPEN")
    log(
        f"S3: {alive} sockets open, {answered}/{len(sample)} answered a ping; "
        f"server RSS {after / 1024:.1f} MiB"
    )
    await bounded(500, (ws.close() for ws in sockets))
    held = alive
    per_socket = (after - before) / held if held else math.inf
    # Marginal cost: least squares over the steps (sockets, RSS) after the first.
    xs = [float(s["sockets"]) for s in steps]
    ys = [float(s["rss_kib"]) for s in steps]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = (
        sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread if spread else math.inf
    )
    return {
        "sockets_asked": config.s3_sockets,
        "sockets_held": held,
        "negotiated_extensions": extensions,
        "sockets_open_client_side": alive,
        "ping_answered": f"{answered}/{len(sample)}",
        "open_errors": dict(errors),
        "connect_seconds": round(connect_seconds, 1),
        "sockets_opened_per_s": round(len(sockets) / connect_seconds, 1) if connect_seconds else None,
        "server_rss_kib_before": before,
        "server_rss_kib_after": after,
        "kib_per_socket": round(per_socket, 1),
        "kib_per_socket_marginal": round(slope, 1),
        "steps": steps,
        "server_cpu_seconds_idle_10s": round(idle_cpu, 2),
    }


# ----------------------------------------------------------------------------- the run


async def measure(stack: Stack, fleet: Fleet, config: Config) -> dict[str, Any]:
    result: dict[str, Any] = {}
    python = str(VENV_BIN / "python")
    worker = stack.start(
        "worker",
        [
            *(python, "bench/_live_worker.py", "--queues", "default,ingest"),
            *("--concurrency", str(config.worker_concurrency)),
            *("--loglevel", "INFO", "--hostname", "bench@%h"),
        ],
    )
    beat = start_beat(stack)
    await asyncio.to_thread(wait_for_log, worker, "ready.")
    runs: dict[str, dict[str, Any]] = {}
    for n, tree in enumerate(config.web_trees):
        # _live_asgi puts its own checkout first on sys.path: the web process runs that code.
        app_dir = str(Path(tree) / "bench") if tree else "bench"
        web, port = start_web(
            stack, f"web-{n}", "_live_asgi:application", config.web_workers, "--app-dir", app_dir,
            *PROCFILE_WEB_FLAGS,
        )  # fmt: skip
        label = f"{n + 1}: {tree or 'this checkout'}"
        if len(config.web_trees) > 1:
            log(f"S2 {label}")
        groups = stack.pids(web=web, worker=worker, beat=beat)
        s2 = await scenario_s2(stack, port, fleet, config, groups, {"web": web.pid, "worker": worker.pid})
        s2["web_tree"] = tree or "this checkout"
        runs[label] = s2
        result.setdefault("s2", s2)
        result.setdefault("peak_rss_mb", {"web": peak_rss(web.pid), "worker": peak_rss(worker.pid)})
        web.stop()
    if len(runs) > 1:
        result["s2_by_web_tree"] = {
            label: {
                "cpu_per_heartbeat": each["cpu_per_heartbeat"],
                "websocket_frames": each["websocket_frames"],
            }
            for label, each in runs.items()
        }
        result["s2_runs"] = runs

    # S3: the Procfile's command, then stock uvicorn (which accepts the permessage-deflate
    # every browser offers), to show what the compression would cost per socket.
    for key, extra in (("s3", PROCFILE_WEB_FLAGS), ("s3_with_deflate", ())):
        if not config.s3 or (key == "s3_with_deflate" and not config.s3_compare):
            continue
        s3_web, s3_port = start_web(stack, f"web-{key}", "portal.asgi:application", 1, *extra)
        log(f"{key}: {' '.join(('uvicorn portal.asgi:application --workers 1', *extra))}")
        result[key] = await scenario_s3(s3_port, s3_web.pid, fleet, config)
        result[key]["server"] = " ".join(("uvicorn portal.asgi:application --workers 1", *extra))
        result[key]["server_peak_rss_mb"] = peak_rss(s3_web.pid)["sum_mb"]
        s3_web.stop()
    return result


def run_loop(stack: Stack, fleet: Fleet, config: Config) -> dict[str, Any]:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(measure(stack, fleet, config))
    return uvloop.run(measure(stack, fleet, config))


def run(config: Config) -> dict[str, Any]:
    load_average = idle_load_average()
    files = raise_open_files_limit(max(config.s3_sockets, config.sockets) * 2 + 2000)
    with services("fleetport-bench-live-", keep_logs=config.keep_logs) as stack:
        folder = stack.folder
        (folder / "trace").mkdir()
        stack.env = bench_env(
            folder, stack.postgres.url, stack.redis.url, LIVE_TRACE_DIR=str(folder / "trace")
        )
        fleet = prepare(stack, config)
        measured = run_loop(stack, fleet, config)

    s2, s3 = measured["s2"], measured.get("s3")
    p95, p99 = s2["latency_ms"].get("p95", math.inf), s2["latency_ms"].get("p99", math.inf)
    checks = {
        "s2_p95_ms": p95 <= TARGETS["s2_p95_ms"],
        "s2_p99_ms": p99 <= TARGETS["s2_p99_ms"],
    }
    if s3 is not None:
        checks["s3_sockets"] = s3["sockets_held"] >= TARGETS["s3_sockets"]
        checks["s3_kib_per_socket"] = s3["kib_per_socket"] <= TARGETS["s3_kib_per_socket"]
    return {
        "benchmark": "live",
        "machine": machine_info(load_average, open_files_limit=files),
        "config": {
            "quick": config.quick,
            "seconds": config.seconds,
            "s1a_rate": config.s1a_rate,
            "rate": config.rate,
            "sockets": config.sockets,
            "staff_sockets": config.staff_sockets,
            "customers": config.customers,
            "assets_per_customer": config.assets_per_customer,
            "assets": config.customers * config.assets_per_customer,
            "http_connections": config.http_connections,
            "s3_sockets": config.s3_sockets if config.s3 else 0,
            "profiled": bool(config.py_spy) or config.cprofile,
            "publish_only": config.publish_only,
            "round_ms": config.round_ms if config.publish_only else None,
            "web_s2": "uvicorn _live_asgi:application (= portal.asgi + one timestamp) "
            + " ".join((f"--workers {config.web_workers}", *PROCFILE_WEB_FLAGS)),
            "web_s3": " ".join(("uvicorn portal.asgi:application --workers 1", *PROCFILE_WEB_FLAGS)),
            "worker": "bench/_live_worker.py (= celery -A portal worker + timestamps) "
            f"--queues default,ingest --concurrency {config.worker_concurrency}, plus celery beat",
            "settings": "portal.settings.dev, DEBUG=0, INGEST_DEVICE_RATE_PER_MINUTE=100000000",
            "clients": "one asyncio (uvloop) process: S2 bench/_ws_client.py (no extension offered), S3 "
            "the websockets client (permessage-deflate offered, like browsers); a keep-alive HTTP/1.1 "
            "client for the POSTs",
        },
        "targets": TARGETS,
        "s2": s2,
        "s2_by_web_tree": measured.get("s2_by_web_tree"),
        "s2_runs": measured.get("s2_runs"),
        "s3": s3,
        "s3_with_deflate": measured.get("s3_with_deflate"),
        "peak_rss_mb": {
            "web": measured["peak_rss_mb"]["web"]["sum_mb"],
            "worker": measured["peak_rss_mb"]["worker"]["sum_mb"],
            "s3_web": s3["server_peak_rss_mb"] if s3 is not None else None,
        },
        "pass": checks,
        "all_pass": all(checks.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: 10 s, 200 sockets, 1,000 idle sockets"
    )
    parser.add_argument("--seconds", type=float, default=None, help="S2 load time (default 60; quick 10)")
    parser.add_argument(
        "--s1a-rate",
        type=float,
        default=DEFAULT_S1A_RATE,
        help=f"the S1a rate to take half of, heartbeats/s (default {DEFAULT_S1A_RATE:g}: the S1a target, "
        "which bench/ingest.py measured 973-1,074 end to end)",
    )
    parser.add_argument(
        "--rate", type=float, default=None, help="S2 heartbeats/s (default: half of --s1a-rate)"
    )
    parser.add_argument(
        "--assets",
        type=int,
        default=None,
        help="assets (one device each), spread evenly over the customers (default 1000; quick 200): "
        "each reports every assets ÷ rate seconds",
    )
    parser.add_argument("--customers", type=int, default=None, help="customers (default 100; quick 20)")
    parser.add_argument("--sockets", type=int, default=None, help="S2 sockets (default 1000; quick 200)")
    parser.add_argument(
        "--http-connections",
        type=int,
        default=None,
        help="keep-alive connections the heartbeats are POSTed on, at most (default: one per 16 "
        "heartbeats/s, at least 32; fewer would make the open-loop sender wait for answers)",
    )
    parser.add_argument(
        "--staff-sockets", type=int, default=None, help="of which support agents (default 1 %%)"
    )
    parser.add_argument(
        "--s3-sockets", type=int, default=None, help="S3 idle sockets (default 10000; quick 1000)"
    )
    parser.add_argument("--no-s3", action="store_true", help="S2 only: skip the idle-socket runs")
    parser.add_argument(
        "--no-s3-compare",
        action="store_true",
        help="skip the second S3 run (stock uvicorn, permessage-deflate accepted)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the web and worker processes with py-spy during the S2 load (py-spy on PATH or "
        "$PY_SPY); the profiler's own cost makes that run's latencies a little worse",
    )
    parser.add_argument(
        "--publish-only",
        action="store_true",
        help="S2's live path alone: no heartbeats POSTed; bench/_live_publish.py publishes the "
        "messages a stored heartbeat makes, in rounds like the worker's batches (latency = "
        "published -> frame; the worker stays idle)",
    )
    parser.add_argument(
        "--round-ms", type=float, default=25.0, help="--publish-only: a publish round every N ms (25)"
    )
    parser.add_argument(
        "--web-trees",
        default=None,
        help="comma-separated checkouts (an empty one: this one): S2 once for each, in turn, the web "
        "process served from it, on one fleet (e.g. 'BASE,,BASE,' for before/after twice)",
    )
    parser.add_argument(
        "--cprofile",
        action="store_true",
        help="cProfile the web process's event loop during the S2 load (no py-spy needed; its cost "
        "per call slows the web process: that run's latencies are not the figure)",
    )
    parser.add_argument(
        "--web-workers", type=int, default=1, help="S2 uvicorn processes (default 1, as the Procfile runs)"
    )
    parser.add_argument(
        "--worker-concurrency", type=int, default=2, help="S2 Celery worker processes (default 2)"
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep logs and traces (folder on stderr)")
    args = parser.parse_args()
    sockets = args.sockets or (200 if args.quick else 1000)
    customers = args.customers or (20 if args.quick else 100)
    assets = args.assets or customers * 10
    if assets % customers:
        parser.error(f"--assets ({assets}) must be a multiple of --customers ({customers})")
    s3_sockets = args.s3_sockets or (1000 if args.quick else 10_000)
    # Quick mode has 200 assets: at 500/s each would report within the consumers' 1-s
    # coalescing window, so it keeps every asset 4 s apart (50/s) unless told otherwise.
    rate = args.rate or (50.0 if args.quick else args.s1a_rate / 2)
    config = Config(
        quick=args.quick,
        seconds=args.seconds or (10.0 if args.quick else 60.0),
        s1a_rate=args.s1a_rate,
        rate=rate,
        sockets=sockets,
        staff_sockets=args.staff_sockets if args.staff_sockets is not None else max(1, sockets // 100),
        customers=customers,
        assets_per_customer=assets // customers,
        s3_sockets=s3_sockets,
        s3_step=max(100, s3_sockets // 10),
        keep_logs=args.keep_logs,
        s3_compare=not args.no_s3_compare,
        s3=not args.no_s3,
        http_connections=args.http_connections or max(32, round(rate / 16)),
        py_spy=(os.environ.get("PY_SPY") or shutil.which("py-spy")) if args.profile else None,
        cprofile=args.cprofile,
        publish_only=args.publish_only,
        round_ms=args.round_ms,
        web_trees=tuple(args.web_trees.split(",")) if args.web_trees else ("",),
        web_workers=args.web_workers,
        worker_concurrency=args.worker_concurrency,
    )
    if args.profile and not config.py_spy:
        parser.error("--profile needs py-spy on PATH or in $PY_SPY")
    return run_main(lambda: json_safe(run(config)))


if __name__ == "__main__":
    sys.exit(main())
