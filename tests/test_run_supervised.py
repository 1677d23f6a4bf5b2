"""`make run`'s supervised set, started as bin/run starts it (its own var folder, port,
PostgreSQL and Redis; no simulator, no demo; as on a second `make run`, its var/postgres holds
a migrated cluster already, a copy of the session's `migrated_cluster`), then broken one
process at a time with SIGKILL, as the kernel's OOM killer would: each comes back on its own,
and every heartbeat a device had acknowledged (202) is stored exactly once. docs/deploy.md,
"Processes and supervision"."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from portal.supervision import Supervisor
from tests.integration import seed_static, wait_until
from tests.services import PostgresServer, free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
APPS = ("web", "worker", "beat")
# A restart is due "within seconds": supervisord spawns again at once, the program then loads.
RESTART_WITHIN = 15.0


@dataclass
class Node:
    var: Path
    base: str
    database_url: str
    run: subprocess.Popen[bytes]
    supervisor: Supervisor
    restarts: dict[str, float] = field(default_factory=dict)

    def get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.base + path, timeout=5) as answer:  # noqa: S310 - our own loopback URL
                return int(answer.status)
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            return 0

    def log(self) -> str:
        return (self.var / "log" / "supervisord.log").read_text()

    def kill(self, name: str) -> None:
        """SIGKILL the program, then wait for the supervisor's new one; its delay is kept."""
        old = self.supervisor.pid(name)
        killed = time.monotonic()
        os.kill(old, signal.SIGKILL)
        wait_until(
            lambda: self.supervisor.pid(name) not in (0, old) and self.supervisor.state(name) == "RUNNING",
            f"{name} restarted",
            timeout=RESTART_WITHIN,
        )
        self.restarts[name] = round(time.monotonic() - killed, 2)
        assert f"exited: {name} (terminated by SIGKILL; not expected)" in self.log()


@dataclass
class Device:
    """A device as the contract asks it to behave: it sends each heartbeat until one answer
    is 202, so what it counts as acknowledged must be stored, once."""

    node: Node
    device_id: str
    token: str
    next_seq: int = 1
    acknowledged: set[int] = field(default_factory=set)

    def send(self, count: int, timeout: float = 45) -> None:
        seqs = list(range(self.next_seq, self.next_seq + count))
        self.next_seq += count
        ts = datetime.now(UTC).isoformat()
        body = json.dumps([{"seq": s, "ts": ts, "status": "ok", "metrics": {}} for s in seqs]).encode()
        request = urllib.request.Request(  # noqa: S310 - our own loopback URL
            self.node.base + "/api/v1/ingest/heartbeats",
            data=body,
            headers={"Authorization": f"Device {self.token}", "Content-Type": "application/json"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
                    if answer.status == 202:
                        self.acknowledged.update(seqs)
                        return
            except urllib.error.HTTPError as error:
                if error.code not in (429, 503):  # shed is fine; refused or a 500 is not
                    raise AssertionError(f"{error.code}: {error.read()!r}") from error
            except OSError:
                pass  # the web server is away: retry, as a device does
            time.sleep(0.3)
        raise AssertionError(f"heartbeats {seqs[0]}..{seqs[-1]} not accepted within {timeout:.0f}s")

    def stored(self) -> list[int]:
        try:
            with psycopg.connect(self.node.database_url, connect_timeout=2) as conn:
                rows = conn.execute(
                    "SELECT seq FROM fleet_heartbeat WHERE device_id = %s", [self.device_id]
                ).fetchall()
        except psycopg.OperationalError:
            return []
        return sorted(row[0] for row in rows)

    def assert_all_stored_once(self, timeout: float = 45) -> None:
        wait_until(lambda: set(self.stored()) >= self.acknowledged, "acknowledged heartbeats stored", timeout)
        stored = self.stored()
        assert stored == sorted(set(stored)), "a heartbeat stored twice"
        assert set(stored) == self.acknowledged


def start_node(var: Path) -> Node:
    port = free_port()
    env = {
        **os.environ,
        "FLEETPORT_VAR_DIR": str(var),
        "PORT": str(port),
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing answers there: a supervised Redis
        "DJANGO_SETTINGS_MODULE": "portal.settings.dev",
        "SIMULATOR": "0",
        "DEMO": "0",
        "INGEST_DEVICE_RATE_PER_MINUTE": "100000",
    }
    env.pop("DATABASE_URL", None)  # the project-local PostgreSQL, supervised
    output = (var / "run.out").open("wb")
    run = subprocess.Popen([sys.executable, str(ROOT / "bin" / "run")], env=env, stdout=output, stderr=output)
    node = Node(
        var=var,
        base=f"http://127.0.0.1:{port}",
        database_url=PostgresServer.kept(var / "postgres").url,
        run=run,
        supervisor=Supervisor(var),
    )

    def ready_or_gone() -> bool:
        return run.poll() is not None or node.get("/readyz") == 200

    try:
        wait_until(ready_or_gone, "the node ready", timeout=200)
        assert run.poll() is None, (var / "run.out").read_text()
    except AssertionError:
        run.send_signal(signal.SIGINT)  # stop whatever did start
        run.wait(timeout=60)
        raise
    return node


def new_device(node: Node) -> Device:
    """A device of a fresh customer and its token, made in the node's own database."""
    script = (
        "from tests.factories import DeviceFactory; from fleet.credentials import device_token_issue; "
        "d = DeviceFactory(); print(d.pk, device_token_issue(device=d, actor=None))"
    )
    env = {**os.environ, "DATABASE_URL": node.database_url, "DJANGO_SETTINGS_MODULE": "portal.settings.dev"}
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    device_id, token = done.stdout.strip().splitlines()[-1].split()
    return Device(node, device_id, token)


@pytest.fixture(scope="module")
def node(collected_static: Path, migrated_cluster: Callable[[Path], None]) -> Iterator[Node]:
    var = Path(tempfile.mkdtemp(prefix="fleetport-run-"))
    var.chmod(0o755)  # PostgreSQL runs as `postgres` when the suite runs as root
    seed_static(collected_static, var)  # bin/run's collectstatic then compresses nothing again
    migrated_cluster(PostgresServer.kept(var / "postgres").data)  # bin/run's migrate then has nothing to do
    node = start_node(var)
    try:
        yield node
    finally:
        pids = [
            node.supervisor.pid(name) for name in (*APPS, "redis", "postgres") if node.supervisor.answers()
        ]
        node.run.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            assert node.run.wait(timeout=60) == 0
            for pid in filter(None, pids):
                assert not Path(f"/proc/{pid}").exists(), f"pid {pid} outlived Ctrl-C"
        finally:
            if node.run.poll() is None:
                node.run.kill()
            artifacts = ROOT / "var" / "artifacts"
            artifacts.mkdir(parents=True, exist_ok=True)
            (artifacts / "supervision-restarts.json").write_text(json.dumps(node.restarts, indent=2) + "\n")
            shutil.rmtree(artifacts / "supervision-logs", ignore_errors=True)
            shutil.copytree(var / "log", artifacts / "supervision-logs")
            shutil.rmtree(var, ignore_errors=True)


@pytest.fixture(scope="module")
def device(node: Node) -> Device:
    return new_device(node)


# The tests below share one node and run in this order, each breaking one more program.


def test_a_killed_worker_is_restarted_and_no_heartbeat_is_lost_or_doubled(node: Node, device: Device) -> None:
    device.send(20)

    node.kill("worker")  # as the OOM killer would, while heartbeats keep coming
    device.send(20)

    device.assert_all_stored_once()
    assert len(device.acknowledged) == 40


def test_a_killed_web_server_answers_again(node: Node, device: Device) -> None:
    node.kill("web")
    device.send(20)  # retried, as a device does, until the new server takes it

    wait_until(lambda: node.get("/healthz") == 200, "the web server answers")
    device.assert_all_stored_once()


def test_a_killed_beat_is_restarted(node: Node, device: Device) -> None:
    node.kill("beat")  # the ingest sweep's clock

    device.send(20)
    device.assert_all_stored_once()


def test_a_killed_redis_is_restarted_and_ingest_recovers(node: Node, device: Device) -> None:
    node.kill("redis")  # the broker and the nudges
    device.send(20)

    device.assert_all_stored_once()
    wait_until(lambda: node.get("/readyz") == 200, "the node ready again")


def test_a_killed_postgres_is_restarted_and_the_node_ready_again(node: Node, device: Device) -> None:
    node.kill("postgres")

    wait_until(lambda: node.get("/readyz") == 200, "the node ready again", timeout=45)
    device.assert_all_stored_once()


def test_ingest_after_a_postgres_restart_never_answers_500(node: Node, device: Device) -> None:
    device.send(20)

    device.assert_all_stored_once()
