"""Where the ingest path spends its time: the view's parts and one drain batch, in-process.

    .venv/bin/python bench/ingest_profile.py [--devices N] [--requests N] [--drain-only]
                                             [--repeats N] [--s1a-only]

A companion to bench/ingest.py for docs/performance.md: it starts its own PostgreSQL and
Redis, migrates, creates a fleet, then — in this one process, no HTTP server — times

- the lean ASGI path (fleet.ingest.endpoint.IngestEndpoint), called in-process the way uvicorn calls
  it: CPU and wall time per request, one at a time and many at once;
- the ingest view through Django's test client: each part (device auth, rate limit, backlog
  check, validation, inbox insert, commit, nudge, connecting to PostgreSQL) per request,
  with the database connection kept, and closed after each request as CONN_MAX_AGE=0 does
  at the end of every real request; with the auth cache hit and missed;
- `fleet.worker.process_batch` on an inbox shaped like S1a (one heartbeat per row, one row
  per device) and like S1b (rows of 100 heartbeats): wall time, SQL statements and their
  time, live publishing, and the project functions that take the most (cProfile). The
  S1a-shaped batch is S2's shape too (each heartbeat its device's only one in the batch): it
  runs `--repeats` times unprofiled and reports the median batch's figures with the CPU of
  this process (the worker's Python) and of its PostgreSQL backend (from /proc) per
  heartbeat, each batch's too; `table_writes` counts the rows the run inserted and updated
  per table (and how many updates were HOT: no index entries written).

Prints one JSON object; progress goes to stderr. Profiled figures are inflated by the
profiler; the `wall_s` of each batch is measured on a separate, unprofiled run.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import ROOT, VENV_BIN, bench_env, log, migrate, sigterm_as_interrupt

from tests.services import PostgresServer, RedisServer

Timings = defaultdict[str, float]


def timed(
    owner: Any, name: str, timings: Timings, label: str | None = None, *, calls: str | None = None
) -> Callable[[], None]:
    """Replace owner.name with a wrapper adding its wall time to timings[label] (and its calls
    to timings[calls]); returns the undo."""
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            timings[label or name] += time.perf_counter() - started
            if calls:
                timings[calls] += 1

    setattr(owner, name, wrapper)
    return lambda: setattr(owner, name, original)


@contextmanager
def sql_counter(timings: Timings) -> Iterator[None]:
    """Count the statements Django sends and the time spent waiting for them."""
    from django.db import connection

    def wrapper(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timings["sql_statements"] += 1
            timings["sql_s"] += time.perf_counter() - started

    with connection.execute_wrapper(wrapper):
        yield


# ----------------------------------------------------------------------------- the view


def heartbeat_body(seq: list[int], batch: int, spell: Callable[[datetime], str]) -> str:
    """A request body of `batch` in-order heartbeats, the last one now; `seq[0]` is the last seq
    used and advances. `spell` writes a timestamp (each case sends the spelling it measured)."""
    now = datetime.now(UTC)
    items = []
    for index in range(batch):
        seq[0] += 1
        metrics = {"run_hours": seq[0] / 60, "energy_kwh": seq[0] / 4, "pressure_bar": 7.1, "temp_c": 61.0}
        ts = spell(now - timedelta(seconds=batch - index))
        items.append({"seq": seq[0], "ts": ts, "status": "ok", "metrics": metrics})
    return json.dumps(items[0] if batch == 1 else items)


def profile_view(tokens: list[str], requests: int) -> dict[str, Any]:
    from django.db import close_old_connections, connections
    from django.test import Client

    from fleet.ingest import admission, auth, contract, view, worker
    from fleet.models import IngestInbox

    client = Client(HTTP_HOST="127.0.0.1")
    seq = [2_000_000_000]

    def body(batch: int) -> str:
        return heartbeat_body(seq, batch, lambda moment: moment.isoformat())

    def run(case: str, *, batch: int, close: bool, miss: bool, count: int) -> dict[str, Any]:
        timings: Timings = defaultdict(float)
        wrapper_class = type(connections["default"])
        nested = {"auth cache misses", "of which: auth lookup", "of which: connect to PostgreSQL"}
        undo = [
            timed(view, "authenticate_device", timings, "device auth"),
            timed(auth, "lookup", timings, "of which: auth lookup", calls="auth cache misses"),
            timed(admission, "rate_limit_hit", timings, "rate limit (Redis)"),
            timed(admission, "backlog_exceeded", timings, "backlog check"),
            timed(contract, "validate_items", timings, "validation"),
            timed(wrapper_class, "set_autocommit", timings, "transaction begin/end"),
            timed(IngestInbox.objects, "create", timings, "inbox INSERT"),
            timed(wrapper_class, "commit", timings, "COMMIT"),
            timed(admission, "nudge", timings, "nudge (Redis, Celery)"),
            timed(wrapper_class, "connect", timings, "of which: connect to PostgreSQL"),
        ]
        # The auth cache lasts DEVICE_AUTH_CACHE_SECONDS: a few devices in turn hit it.
        keys = tokens if miss else tokens[:10]
        try:
            for round_ in (0, 1):  # a warm-up round, then the measured one
                timings.clear()
                started = time.perf_counter()
                for number in range(count):
                    if miss:
                        auth.clear_auth_cache()
                    response = client.post(
                        "/api/v1/ingest/heartbeats",
                        body(batch),
                        content_type="application/json",
                        HTTP_AUTHORIZATION=f"Device {keys[number % len(keys)]}",
                    )
                    assert response.status_code == 202, response.content
                    if close:
                        close_old_connections()  # what request_finished does with CONN_MAX_AGE=0
                total = time.perf_counter() - started
                if round_ == 0:
                    worker.drain(time_budget=120)  # keep the inbox small between cases
        finally:
            for step in undo:
                step()
        per_request = {k: round(v / count * 1000, 3) for k, v in timings.items() if k not in nested}
        per_request["rest: middleware, Django request and response"] = round(
            total / count * 1000 - sum(per_request.values()), 3
        )
        log(f"view, {case}: {total / count * 1000:.2f} ms per request")
        return {
            "ms_per_request": round(total / count * 1000, 3),
            "parts_ms": per_request,
            # Nested in the parts above: the lookup in device auth; connecting in device auth
            # (on a cache miss) or else in the transaction's begin.
            "auth_cache_miss_share": round(timings["auth cache misses"] / count, 3),
            "auth_lookup_ms": round(timings["of which: auth lookup"] / count * 1000, 3),
            "connect_ms": round(timings["of which: connect to PostgreSQL"] / count * 1000, 3),
        }

    result = {
        "1 heartbeat, connection kept, auth cached": run(
            "kept", batch=1, close=False, miss=False, count=requests
        ),
        "1 heartbeat, connection closed after the request (CONN_MAX_AGE=0), auth cached": run(
            "closed", batch=1, close=True, miss=False, count=requests
        ),
        "1 heartbeat, connection closed, auth cache missed (a device sending once a minute)": run(
            "closed+miss", batch=1, close=True, miss=True, count=requests
        ),
        "100 heartbeats, connection closed, auth cached": run(
            "batch", batch=100, close=True, miss=False, count=max(10, requests // 3)
        ),
    }
    worker.drain(time_budget=120)
    return result


# ----------------------------------------------------------------------------- the lean path


def profile_lean(tokens: list[str], requests: int) -> dict[str, Any]:
    """The lean ASGI path (fleet.ingest.endpoint.IngestEndpoint) called in-process as uvicorn calls it:
    CPU and wall time per request, one at a time and 64 at once (the inbox rows of concurrent
    requests share one INSERT and commit), auth cached; plus the validation alone."""
    import asyncio

    from fleet.ingest import contract, endpoint, worker

    seq = [2_500_000_000]  # above the view cases, below the drain cases: always in order

    def body(batch: int) -> bytes:
        return heartbeat_body(seq, batch, lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%SZ")).encode()

    async def call(lean: endpoint.IngestEndpoint, token: str, data: bytes) -> int:
        sent: list[dict[str, Any]] = []
        incoming = [{"type": "http.request", "body": data, "more_body": False}]

        async def receive() -> dict[str, Any]:
            return incoming.pop(0) if incoming else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        headers = [
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Device {token}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
        ]
        scope = {"type": "http", "method": "POST", "path": contract.PATH, "root_path": "", "scheme": "http",
                 "headers": headers, "query_string": b""}  # fmt: skip
        await lean(scope, receive, send)
        return int(sent[0]["status"])

    async def run_case(batch: int, concurrency: int, count: int) -> dict[str, Any]:
        async def django(*_: Any) -> None:  # never reached: every request is the ingest path's
            raise AssertionError("handed to Django")

        lean = endpoint.IngestEndpoint(django)
        keys = tokens[:10]  # auth cached after the first round
        try:
            result: dict[str, Any] = {}
            for round_ in (0, 1):  # a warm-up round, then the measured one
                bodies = [body(batch) for _ in range(count)]
                cpu, wall = time.process_time(), time.perf_counter()
                for start in range(0, count, concurrency):
                    codes = await asyncio.gather(
                        *(
                            call(lean, keys[n % len(keys)], bodies[n])
                            for n in range(start, min(count, start + concurrency))
                        )
                    )
                    assert set(codes) == {202}, codes
                cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                if round_:
                    result = {"cpu_ms_per_request": round(cpu / count * 1000, 3),
                              "wall_ms_per_request": round(wall / count * 1000, 3)}  # fmt: skip
            return result
        finally:
            await lean.close()

    identities = {"run_hours": "counter", "energy_kwh": "counter", "pressure_bar": "gauge", "temp_c": "gauge"}
    validation = {}
    for batch in (1, 100):
        data = body(batch)
        started = time.process_time()
        for _ in range(200):
            contract.parse_and_validate(data, identities)
        validation[f"{batch} heartbeat(s)"] = round((time.process_time() - started) / 200 * 1000, 3)
    result = {
        "1 heartbeat, one request at a time": asyncio.run(run_case(1, 1, requests)),
        "1 heartbeat, 64 requests at a time": asyncio.run(run_case(1, 64, requests * 2)),
        "100 heartbeats, 32 requests at a time": asyncio.run(run_case(100, 32, max(64, requests // 3))),
        "parse and validate only, cpu ms": validation,
    }
    log(f"lean path: {result['1 heartbeat, 64 requests at a time']['cpu_ms_per_request']} ms CPU a request")
    worker.drain(time_budget=120)
    return result


# ----------------------------------------------------------------------------- the drain


def fill_inbox(devices: list[str], *, rows_per_device: int, items_per_row: int, seq_base: int) -> int:
    from fleet.models import IngestInbox

    now = datetime.now(UTC)
    rows = []
    for device in devices:
        seq = seq_base
        for _ in range(rows_per_device):
            items = []
            for index in range(items_per_row):
                ts = (now - timedelta(seconds=items_per_row - index)).isoformat()
                metrics = {"run_hours": seq / 60, "energy_kwh": seq / 4, "pressure_bar": 7.1, "temp_c": 61.0}
                items.append({"seq": seq, "ts": ts, "status": "ok", "fault_code": "", "metrics": metrics})
                seq += 1
            rows.append(IngestInbox(device_id=device, count=len(items), items=items))
    IngestInbox.objects.bulk_create(rows)
    return sum(row.count for row in rows)


def top_project_functions(profile: cProfile.Profile, limit: int = 14) -> dict[str, dict[str, float]]:
    stats = pstats.Stats(profile)
    entries = []
    for (filename, line, name), (_cc, calls, _tt, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        if filename.startswith(str(ROOT)) and "/.venv/" not in filename and "/bench/" not in filename:
            label = f"{Path(filename).relative_to(ROOT)}:{line}({name})"
            entries.append((cumtime, label, calls))
    entries.sort(reverse=True)
    return {label: {"calls": calls, "cum_s": round(cum, 3)} for cum, label, calls in entries[:limit]}


def backend_cpu_s() -> float:
    """CPU seconds (user + system) of this connection's PostgreSQL backend so far: the server
    runs on this machine, so /proc tells (in clock ticks, 10 ms here)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_batch(profiled: bool, items: int, timings: Timings, result: dict[str, Any]) -> None:
    """One `process_batch` of an inbox holding `items` heartbeats, into `result`: profiled,
    its wall time and the project functions that took the most; else its counts, wall and
    CPU time (this process: the worker's Python and its client side; and its PostgreSQL
    backend's) and SQL statements."""
    from fleet.ingest import worker

    profile = cProfile.Profile()
    backend = backend_cpu_s()
    with sql_counter(timings):
        started, cpu = time.perf_counter(), time.process_time()
        if profiled:
            profile.enable()
        batch = worker.process_batch()
        if profiled:
            profile.disable()
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    backend = backend_cpu_s() - backend
    if profiled:
        result["profiled_wall_s"] = round(wall, 3)
        result["top_project_functions"] = top_project_functions(profile)
        return
    result.update(
        {
            "inbox_rows": batch.rows,
            "heartbeats": items,
            "stored": batch.stored,
            "duplicates": batch.duplicates,
            "wall_s": round(wall, 3),
            "heartbeats_per_s": round(items / wall, 1),
            "cpu_s": round(cpu, 3),
            "cpu_us_per_heartbeat": round(cpu / items * 1e6, 2),
            "postgres_cpu_s": round(backend, 3),
            "postgres_cpu_us_per_heartbeat": round(backend / items * 1e6, 2),
            "sql_statements": int(timings["sql_statements"]),
            "sql_wait_s": round(timings["sql_s"], 3),
        }
    )


def profile_drain(
    devices: list[str],
    *,
    name: str,
    rows_per_device: int,
    items_per_row: int,
    seq_base: int,
    repeats: int = 1,
) -> dict[str, Any]:
    """`repeats` unprofiled batches (the figures of the median one by worker CPU, and each
    one's worker and PostgreSQL CPU), then a profiled one."""
    from fleet.ingest import worker
    from portal import live

    runs: list[dict[str, Any]] = []
    result: dict[str, Any] = {}
    base = seq_base
    for profiled in [False] * repeats + [True]:
        base += 10_000_000
        items = fill_inbox(
            devices, rows_per_device=rows_per_device, items_per_row=items_per_row, seq_base=base
        )
        timings: Timings = defaultdict(float)
        undo = timed(live, "publish", timings, "live_publish_s", calls="live_publish_calls")
        run: dict[str, Any] = {}
        try:
            one_batch(profiled, items, timings, run)
        finally:
            undo()
        if profiled:
            result.update(run)
        else:
            run["live_publish_calls"] = int(timings["live_publish_calls"])
            run["live_publish_s"] = round(timings["live_publish_s"], 3)
            runs.append(run)
        worker.drain(time_budget=120)
    runs_by_cpu = sorted(runs, key=lambda r: r["cpu_s"])
    result.update(runs_by_cpu[len(runs) // 2])
    if repeats > 1:
        result["batches"] = repeats
        result["cpu_us_per_heartbeat_each"] = [r["cpu_us_per_heartbeat"] for r in runs]
        result["postgres_cpu_us_per_heartbeat_each"] = [r["postgres_cpu_us_per_heartbeat"] for r in runs]
        result["postgres_cpu_us_per_heartbeat_median"] = sorted(result["postgres_cpu_us_per_heartbeat_each"])[
            len(runs) // 2
        ]
    log(f"drain, {name}: {result['heartbeats_per_s']:,.0f} heartbeats/s ({result['wall_s']:.2f}s a batch)")
    return result


def table_writes() -> dict[str, dict[str, int]]:
    """Rows inserted, updated and of those updated in place (HOT: no index entries) per table
    the drain writes, over the whole run."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables "
            "WHERE relname ~ '^fleet_(device|asset|hourlyusage|telemetryrollup|heartbeat|ingestinbox)' "
            "ORDER BY relname"
        )
        return {
            name: {"inserted": ins, "updated": upd, "hot_updated": hot, "deleted": deleted}
            for name, ins, upd, hot, deleted in cursor.fetchall()
            if ins or upd or deleted
        }


def spread_rows(
    devices: list[str], *, items_per_row: int, seq_base: int, keep: Callable[[int], bool]
) -> list[Any]:
    """One inbox row per device of the heartbeats `seq_base + i` that `keep(i)`, i < items_per_row,
    their `ts` 45 minutes apart ending now (100 of them: 74 hours, so four daily partitions)."""
    from fleet.models import IngestInbox

    now = datetime.now(UTC)
    rows = []
    for device in devices:
        items = []
        for index in range(items_per_row):
            if not keep(index):
                continue
            seq = seq_base + index
            ts = (now - timedelta(minutes=45 * (items_per_row - 1 - index))).isoformat()
            metrics = {"run_hours": seq / 60, "energy_kwh": seq / 4, "pressure_bar": 7.1, "temp_c": 61.0}
            items.append({"seq": seq, "ts": ts, "status": "ok", "fault_code": "", "metrics": metrics})
        rows.append(IngestInbox(device_id=device, count=len(items), items=items))
    return rows


def profile_replay(devices: list[str], *, items_per_row: int, seq_base: int, late: bool) -> dict[str, Any]:
    """A batch of heartbeats at or below their devices' last seq, spread over three days: stored
    already (a device replaying what it sent, `late=False`: all duplicates), or new ones between
    stored ones (`late=True`: every other seq was stored first, then the rest arrive), each
    batch after one newer heartbeat per device made them out of order."""
    from fleet.ingest import worker
    from fleet.models import IngestInbox

    result: dict[str, Any] = {}
    base = seq_base
    for profiled in (False, True):
        base += 10_000_000
        first = spread_rows(
            devices, items_per_row=items_per_row, seq_base=base, keep=lambda i: not late or i % 2 == 0
        )
        newer = spread_rows(devices, items_per_row=1, seq_base=base + items_per_row, keep=lambda i: True)
        IngestInbox.objects.bulk_create(first + newer)
        worker.drain(time_budget=120)
        again = spread_rows(
            devices, items_per_row=items_per_row, seq_base=base, keep=lambda i: not late or i % 2 == 1
        )
        IngestInbox.objects.bulk_create(again)
        items = sum(row.count for row in again)
        one_batch(profiled, items, defaultdict(float), result)
    name = "late" if late else "replayed"
    log(f"drain, {name}: {result['heartbeats_per_s']:,.0f} heartbeats/s ({result['wall_s']:.2f}s a batch)")
    return result


# ----------------------------------------------------------------------------- the run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=500, help="devices in the fleet (default 500)")
    parser.add_argument("--requests", type=int, default=300, help="requests per view case (default 300)")
    parser.add_argument(
        "--drain-only", action="store_true", help="profile the worker's batches only (not the doors)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="unprofiled S1a-shaped batches, the median reported (default 5)",
    )
    parser.add_argument(
        "--s1a-only",
        action="store_true",
        help="only the S1a-shaped batches (with --drain-only: the quickest run)",
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fleetport-profile-"))
    postgres, redis = PostgresServer(), RedisServer()
    with sigterm_as_interrupt():
        try:
            log("starting PostgreSQL and Redis")
            postgres.start()
            redis.start()
            # This process profiles in-process, so the settings go into its own environment.
            os.environ.update(bench_env(folder, postgres.url, redis.url, LOG_LEVEL="WARNING"))
            python = str(VENV_BIN / "python")
            migrate(dict(os.environ))
            log("create the fleet")
            created = subprocess.run(  # noqa: S603
                [python, "bench/_setup_fleet.py", str(args.devices)],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            )
            devices = json.loads(created.stdout)["devices"]
            import django

            django.setup()
            tokens = [d["token"] for d in devices]
            ids = [d["device"] for d in devices]
            result: dict[str, Any] = {
                "machine": {"nproc": os.cpu_count(), "load_average_at_start": os.getloadavg()}
            }
            if not args.drain_only:
                result["view"] = profile_view(tokens, args.requests)
                result["lean_path"] = profile_lean(tokens, args.requests)
            s1a = min(500, len(ids))
            drain: dict[str, Any] = {
                f"S1a-shaped: {s1a} rows of 1 heartbeat, {s1a} devices": profile_drain(
                    ids[:500],
                    name="S1a-shaped",
                    rows_per_device=1,
                    items_per_row=1,
                    seq_base=3 * 10**9,
                    repeats=args.repeats,
                )
            }
            if not args.s1a_only:
                drain["S1b-shaped: 100 rows of 100 heartbeats, 100 devices"] = profile_drain(
                    ids[:100], name="S1b-shaped", rows_per_device=1, items_per_row=100, seq_base=4 * 10**9
                )
                drain["replayed: 100 rows of 100 stored heartbeats over 74 h, 100 devices"] = profile_replay(
                    ids[:100], items_per_row=100, seq_base=6 * 10**9, late=False
                )
                drain["late: 100 rows of 50 new heartbeats between stored ones, 100 devices"] = (
                    profile_replay(ids[:100], items_per_row=100, seq_base=7 * 10**9, late=True)
                )
            result["drain"] = drain
            result["table_writes"] = table_writes()
        except KeyboardInterrupt:
            return 130
        finally:
            if "django.db" in sys.modules:
                from django.db import connections

                connections.close_all()
            redis.stop()
            postgres.stop()
            shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
