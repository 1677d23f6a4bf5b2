"""Shared pieces of the benchmark scripts: processes and the throwaway services they run on,
/proc readings, the wrk load generator, the inbox, and the fleet the set-up scripts create.

Every process a benchmark starts runs in its own session (process group) so that stopping it
also stops its children (uvicorn's workers, Celery's pool), by that group's id only.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    import psycopg

    from tests.services import PostgresServer, RedisServer

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = ROOT / ".venv" / "bin"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    """Human progress: stderr only (stdout carries the JSON result)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Process:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, argv: Sequence[str], *, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log: TextIO = log_path.open("w")
        self.popen = subprocess.Popen(  # noqa: S603 - our own argv, no shell
            list(argv),
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the group (a warm shutdown), SIGKILL to the group after `timeout`."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait()
        # Children that outlived their parent (none should) are in the same group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        self._log.close()


# ----------------------------------------------------------------------------- /proc readings


@dataclass
class Stack:
    """What a benchmark started, for the measurements and for stopping it all."""

    folder: Path
    env: dict[str, str]
    postgres: PostgresServer
    redis: RedisServer
    processes: list[Process] = field(default_factory=list)

    def start(self, name: str, argv: list[str]) -> Process:
        process = Process(name, argv, env=self.env, log_path=self.folder / f"{name}.log")
        self.processes.append(process)
        return process

    def postmaster_pid(self) -> int:
        return int((self.postgres.data / "postmaster.pid").read_text().splitlines()[0])

    def pids(self, **processes: Process) -> dict[str, int]:
        """The groups to sample: the named processes, PostgreSQL's postmaster and Redis."""
        return {
            **{name: process.pid for name, process in processes.items()},
            "postgres": self.postmaster_pid(),
            "redis": self.redis.process.pid if self.redis.process else 0,
        }

    def connect(self) -> psycopg.Connection[Any]:
        import psycopg

        return psycopg.connect(self.postgres.url, autocommit=True)


def uvicorn_argv(app: str, port: int, workers: int, *extra: str) -> list[str]:
    """The one uvicorn command the benchmarks serve with (uvloop, httptools, websockets)."""
    return [
        str(VENV_BIN / "uvicorn"),
        app,
        *extra,
        *("--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)),
        *("--no-access-log", "--log-level", "warning"),
    ]


def wait_for_log(process: Process, needle: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in process.log_path.read_text(errors="replace"):
            return
        if not process.alive():
            break
        time.sleep(0.2)
    raise RuntimeError(f"{process.name} did not log {needle!r}:\n{process.tail()}")


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    return children


def process_tree(pid: int) -> list[int]:
    """`pid` and all its live descendants."""
    children = _children_map()
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        if Path(f"/proc/{current}").exists():
            found.append(current)
        todo.extend(children.get(current, []))
    return found


def _status_kb(pid: int, field: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
    return ""


def peak_rss(pid: int) -> dict[str, Any]:
    """VmHWM (peak resident set) of `pid` and each live descendant, in MiB."""
    peaks = {p: round(_status_kb(p, "VmHWM") / 1024, 1) for p in process_tree(pid)}
    processes = [{"pid": p, "peak_rss_mb": mb, "cmd": _cmdline(p)} for p, mb in peaks.items()]
    values = list(peaks.values())
    return {
        "processes": processes,
        "max_process_mb": max(values, default=0.0),
        "sum_mb": round(sum(values), 1),
    }


def resident_kib(pid: int) -> int:
    """VmRSS (resident set now) of one process, in KiB; 0 when it is gone."""
    return _status_kb(pid, "VmRSS")


def socket_count(pid: int) -> int:
    """Open sockets of one process (its /proc/<pid>/fd entries that are sockets)."""
    count = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(entry.path).startswith("socket:"):
                    count += 1
    return count


def raise_open_files_limit(wanted: int) -> int:
    """Raise this process's RLIMIT_NOFILE soft limit towards `wanted` (children started
    afterwards inherit it); root may raise the hard limit too. Returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    if hard != resource.RLIM_INFINITY and hard < wanted and os.geteuid() == 0:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process tree, including its reaped children
    (PostgreSQL backends that have exited are counted through the postmaster's cutime)."""
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{p}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            # utime, stime, cutime, cstime are fields 14..17 of stat(5); index 11..14 here.
            total += sum(int(v) for v in fields[11:15])
    return total / CLOCK_TICKS


def machine_cpu() -> tuple[float, float]:
    """(busy seconds, total seconds) of all cores since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # without guest time, which is included in user
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


@dataclass
class CpuSample:
    """CPU seconds used by named process trees (and the machine) between two moments."""

    groups: dict[str, int]
    start: dict[str, float]
    machine_start: tuple[float, float]
    children_start: float

    @classmethod
    def begin(cls, groups: dict[str, int]) -> CpuSample:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(
            groups=groups,
            start={name: cpu_seconds(pid) for name, pid in groups.items()},
            machine_start=machine_cpu(),
            children_start=usage.ru_utime + usage.ru_stime,
        )

    def end(self) -> dict[str, float]:
        """CPU seconds per group; `load_generator` is the reaped children of this script
        (wrk); `machine_busy` is all cores' busy seconds, `machine_busy_fraction` their share;
        `outside_benchmark` the busy seconds none of the measured processes used: other work
        on the machine, so a large figure means the run was disturbed."""
        result = {name: round(cpu_seconds(pid) - self.start[name], 2) for name, pid in self.groups.items()}
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        result["load_generator"] = round(usage.ru_utime + usage.ru_stime - self.children_start, 2)
        busy, total = machine_cpu()
        busy -= self.machine_start[0]
        elapsed = total - self.machine_start[1]
        ours = sum(result.values())
        result["machine_busy"] = round(busy, 2)
        result["outside_benchmark"] = round(max(0.0, busy - ours), 2)
        result["machine_busy_fraction"] = round(busy / elapsed, 3) if elapsed else 0.0
        return result


# ----------------------------------------------------------------------------- load generator

WRK_SCRIPT = BENCH / "wrk_heartbeats.lua"


def ensure_wrk() -> str:
    """The wrk binary; installed from Debian's package when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk is missing: apt-get install wrk")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
            subprocess.run(argv, check=False, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: S603
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit("The benchmark needs wrk (Debian/Ubuntu: apt-get install wrk; macOS: brew install wrk).")


@dataclass
class WrkResult:
    requests: int
    duration: float  # seconds
    ok: int  # 2xx answers
    status: dict[str, int]  # other answers by status code class
    socket_errors: dict[str, int]
    latency_ms: dict[str, float]
    wall_start: float  # time.monotonic() just before wrk started
    wall_end: float

    @property
    def rate(self) -> float:
        return self.requests / self.duration if self.duration else 0.0

    @property
    def ok_rate(self) -> float:
        return self.ok / self.duration if self.duration else 0.0


def run_wrk(
    wrk: str,
    url: str,
    *,
    tokens_file: Path,
    batch: int,
    seq_base: int,
    seconds: float,
    connections: int,
    threads: int = 2,
    timeout: float = 10.0,
    script: Path = WRK_SCRIPT,
    script_args: Sequence[str] = (),
) -> WrkResult:
    """Run wrk with the heartbeat script (or `script`, which takes the same arguments and then
    `script_args`); one device per request, devices spread over threads."""
    argv = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout:.0f}s",
        "-s",
        str(script),
        url,
        "--",
        str(tokens_file),
        str(batch),
        str(seq_base),
        str(threads),
        *script_args,
    ]
    started = time.monotonic()
    completed = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=seconds + 120)  # noqa: S603
    ended = time.monotonic()
    line = next((ln for ln in completed.stdout.splitlines() if ln.startswith("WRKJSON ")), None)
    if completed.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed ({completed.returncode}): {completed.stdout[-2000:]}{completed.stderr}"
        )
    data = json.loads(line.removeprefix("WRKJSON "))
    return WrkResult(
        requests=data["requests"],
        duration=data["duration_us"] / 1e6,
        ok=data["ok"],
        status={k: v for k, v in data["status"].items() if v},
        socket_errors={k: v for k, v in data["errors"].items() if v},
        latency_ms={k: round(v / 1000, 2) for k, v in data["latency_us"].items()},
        wall_start=started,
        wall_end=ended,
    )


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so `finally` blocks stop what was started."""

    def raise_interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_main(run: Callable[[], dict[str, Any]]) -> int:
    """A benchmark's `main` after its arguments: run, print the JSON result on stdout.

    Ctrl-C and SIGTERM stop everything `run` started (its `finally` blocks) and exit 130.
    """
    with sigterm_as_interrupt():
        try:
            result = run()
        except KeyboardInterrupt:
            log("interrupted; everything was stopped")
            return 130
    print(json.dumps(result, indent=2))
    return 0


def idle_load_average() -> tuple[float, float, float]:
    """The load average at the start, with a note on stderr when the machine is not idle."""
    load_average = os.getloadavg()
    if load_average[0] > 0.5:
        log(f"note: the machine is not idle (load average {load_average[0]:.2f}); figures will be worse")
    return load_average


def machine_info(load_average: tuple[float, float, float], **extra: Any) -> dict[str, Any]:
    """The "machine" part of a result: cores, Python, the load average at the start."""
    return {
        "nproc": os.cpu_count(),
        "python": sys.version.split()[0],
        "load_average_at_start": [round(v, 2) for v in load_average],
        **extra,
    }


# ----------------------------------------------------------------------------- the services


def bench_env(folder: Path, database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment the portal runs with under a benchmark: dev settings without DEBUG, the
    throwaway services, and no device rate limit (the load comes from a few hundred devices)."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.dev",
        "DEBUG": "0",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "INGEST_DEVICE_RATE_PER_MINUTE": "100000000",
        "FLEETPORT_VAR_DIR": str(folder / "var"),
        "LOG_LEVEL": "INFO",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


@contextlib.contextmanager
def services(prefix: str, *, keep_logs: bool, postgres_folder: Path | None = None) -> Iterator[Stack]:
    """A temporary folder with a throwaway PostgreSQL and Redis, as a `Stack` to start processes
    on. On the way out (Ctrl-C and SIGTERM under `run_main` included) every process the stack
    started is stopped, newest first, then the two servers; the folder goes unless `keep_logs`.
    With `postgres_folder` the PostgreSQL cluster lives there and is kept (made on first use,
    stopped cleanly, still without fsync: a benchmark's data, not a portal's)."""
    from tests.services import PostgresServer, RedisServer

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    postgres, redis = PostgresServer(postgres_folder, durable=False), RedisServer()
    stack = Stack(folder=folder, env={}, postgres=postgres, redis=redis)
    try:
        log("starting PostgreSQL and Redis")
        postgres.start()
        redis.start()
        yield stack
    finally:
        log("stopping everything")
        for process in reversed(stack.processes):
            process.stop()
        redis.stop()
        postgres.stop()
        if keep_logs:
            log(f"logs kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def migrate(env: dict[str, str]) -> None:
    log("migrate")
    migrated = subprocess.run(  # noqa: S603
        [str(VENV_BIN / "python"), "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if migrated.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{migrated.stdout[-3000:]}{migrated.stderr[-3000:]}")


def start_web(stack: Stack, name: str, app: str, workers: int, *extra: str) -> tuple[Process, int]:
    """uvicorn serving `app` on a free loopback port, once it answers: (process, port)."""
    from tests.services import free_port, wait_for_port

    port = free_port()
    process = stack.start(name, uvicorn_argv(app, port, workers, *extra))
    try:
        wait_for_port(port, timeout=60)
    except TimeoutError as exc:
        raise RuntimeError(f"{name} did not start:\n{process.tail()}") from exc
    return process, port


def start_beat(stack: Stack) -> Process:
    """Celery beat, as the portal runs it (the ingest sweep, the offline sweep…)."""
    argv = [str(VENV_BIN / "celery"), "-A", "portal", "beat", "--loglevel", "WARNING"]
    return stack.start("beat", [*argv, "--schedule", str(stack.folder / "beat-schedule")])


@dataclass
class Node:
    """One node's processes as the Procfile runs them, the groups to measure, its ingest URL."""

    web: Process
    worker: Process
    beat: Process
    groups: dict[str, int]
    url: str


def start_node(stack: Stack, web: Process, url: str, *, hostname: str) -> Node:
    """Next to `web` (serving `url`), the Procfile's Celery worker (queues default,ingest,
    concurrency 2) and beat; returned once the worker is ready."""
    worker = stack.start(
        "worker",
        [
            *(str(VENV_BIN / "celery"), "-A", "portal", "worker", "--queues", "default,ingest"),
            *("--concurrency", "2", "--loglevel", "INFO", "--hostname", f"{hostname}@%h"),
        ],
    )
    beat = start_beat(stack)
    wait_for_log(worker, "ready.")
    return Node(web, worker, beat, stack.pids(web=web, worker=worker, beat=beat), url)


# ----------------------------------------------------------------------------- the inbox

DRAIN_TIMEOUT = 300.0


def inbox_state(conn: psycopg.Connection[Any]) -> tuple[int, bool]:
    """(highest heartbeat id, whether the inbox holds anything): two index lookups."""
    row = conn.execute(
        "SELECT (SELECT coalesce(max(id), 0) FROM fleet_heartbeat), EXISTS (SELECT 1 FROM fleet_ingestinbox)"
    ).fetchone()
    assert row is not None
    return int(row[0]), bool(row[1])


def wait_drained(
    conn: psycopg.Connection[Any],
    *,
    settle: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    timeout: float = DRAIN_TIMEOUT,
) -> float:
    """Wait until the inbox is empty and nothing more is stored for `settle` seconds.

    Returns `clock()` at the first poll that saw the final state: when the last heartbeat had
    been stored (within the 50 ms poll interval).
    """
    deadline = time.monotonic() + timeout
    last_state, last_change = inbox_state(conn), clock()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        state = inbox_state(conn)
        now = clock()
        if state != last_state:
            last_state, last_change = state, now
        elif not state[1] and now - last_change >= settle:
            return last_change
    row = conn.execute("SELECT coalesce(sum(count), 0) FROM fleet_ingestinbox").fetchone()
    left = int(row[0]) if row else 0
    raise RuntimeError(f"the inbox did not drain within {timeout:.0f}s ({left} left)")


# ----------------------------------------------------------------------------- the fleet
# For the set-up scripts, in a process that has called django.setup().


def bench_asset_model() -> Any:
    """The benchmarks' asset model: run_hours and energy_kwh counters, pressure_bar and temp_c
    gauges, a heartbeat a minute."""
    from fleet.models import MetricKind
    from fleet.services import asset_model_create, metric

    return asset_model_create(
        actor=None,
        code="bench-compressor",
        name="Bench compressor",
        heartbeat_interval_seconds=60,
        metrics=[
            metric("run_hours", "Run hours", "h", MetricKind.COUNTER),
            metric("energy_kwh", "Energy", "kWh", MetricKind.COUNTER),
            metric("pressure_bar", "Pressure", "bar", MetricKind.GAUGE),
            metric("temp_c", "Temperature", "°C", MetricKind.GAUGE),
        ],
    )


def bench_device(*, site: Any, model: Any, serial: str, name: str, device_serial: str) -> dict[str, str]:
    """An asset with one installed device, through the project's services: its ids and token."""
    from fleet.services import asset_create, device_install

    asset = asset_create(actor=None, site=site, model=model, serial_number=serial, name=name)
    device, token = device_install(actor=None, asset=asset, serial_number=device_serial)
    return {"device": str(device.pk), "asset": str(asset.pk), "token": token}
