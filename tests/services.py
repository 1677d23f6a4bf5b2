"""The project's own PostgreSQL and Redis servers: throwaway ones for the test suite and
the benchmarks, and the kept PostgreSQL of `make run` (bin/run, data in var/postgres).

A throwaway server runs as a child process on a free loopback port with its files in a
temporary folder, and is stopped (and its folder removed) by `stop()`. `bin/with-services`
starts both around a command; tests start extra ones when they need to break one (see
test_health.py).

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` system user
that Debian's package creates.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing answered on 127.0.0.1:{port} within {timeout:.0f}s")


def find_program(name: str) -> str:
    """A server program from PATH, else from Debian's versioned PostgreSQL folders."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if candidates:
        return candidates[0]
    raise FileNotFoundError(f"{name} is not installed (make test installs it: see bin/ensure-packages)")


def require_partman(initdb: str) -> None:
    """Fail early, and say why, when the server's pg_partman is missing: the fleet migrations
    create the extension (docs/ingest.md, "Partitioned telemetry"). Checked in Debian's layout."""
    version = Path(initdb).resolve().parent.parent
    if version.parent != Path("/usr/lib/postgresql"):
        return  # not Debian's layout: the migration says so if it is missing
    if not Path(f"/usr/share/postgresql/{version.name}/extension/pg_partman.control").exists():
        raise FileNotFoundError(
            f"pg_partman is not installed for PostgreSQL {version.name}: apt-get install "
            f"postgresql-{version.name}-partman (make test and make run install it: see bin/ensure-packages)"
        )


class RedisServer:
    extra_args: tuple[str, ...] = ()  # a subclass's further options (RedisReplica)

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="fleetport-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def on_port(cls, port: int) -> RedisServer:
        """A new server on a port a stopped one used (a restart, as clients see it)."""
        return cls(port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                find_program("redis-server"),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--save",
                "",
                "--appendonly",
                "no",
                "--loglevel",
                "warning",
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


class PostgresServer:
    """A PostgreSQL server of the project's own.

    Throwaway by default (a temporary folder, a free loopback port, fsync off; `stop()`
    removes it). `PostgresServer.kept(folder)` is `make run`'s: its data stays in `folder`
    across runs, it listens only on a Unix socket in that folder (no port to collide with),
    and it is stopped cleanly.
    """

    USER = "fleetport"
    DATABASE = "fleetport"
    SOCKET_PORT = 5432  # names the socket file only, when the server listens on no port

    def __init__(self, folder: Path | None = None, *, durable: bool | None = None) -> None:
        self.keep = folder is not None
        self.durable = self.keep if durable is None else durable
        self.port = self.SOCKET_PORT if self.keep else free_port()
        self.folder = (folder or Path(tempfile.mkdtemp(prefix="fleetport-pg-"))).resolve()
        self.data = self.folder / "data"
        self.run_as: list[str] = []
        self.folder.mkdir(parents=True, exist_ok=True)
        self.data.mkdir(exist_ok=True)
        self.data.chmod(0o700)
        if os.geteuid() == 0:
            # initdb and postgres refuse root: run them as Debian's `postgres` user.
            owner = pwd.getpwnam("postgres")
            self.folder.chmod(0o755)
            os.chown(self.data, owner.pw_uid, owner.pw_gid)
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self.run_as = ["runuser", "-u", "postgres", "--"]

    @classmethod
    def kept(cls, folder: Path) -> PostgresServer:
        return cls(folder)

    @property
    def url(self) -> str:
        if self.keep:
            return f"postgres://{self.USER}@{quote(str(self.folder), safe='')}/{self.DATABASE}"
        return f"postgres://{self.USER}@127.0.0.1:{self.port}/{self.DATABASE}"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.run_as, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def _client_args(self) -> list[str]:
        host = str(self.folder) if self.keep else "127.0.0.1"
        return ["-h", host, "-p", str(self.port), "-U", self.USER]

    def running(self) -> bool:
        result = subprocess.run(
            [*self.run_as, find_program("pg_ctl"), "-D", str(self.data), "status"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        return result.returncode == 0

    def start(self) -> PostgresServer:
        """Start the server; a kept one is created on first use and reused after (if it runs
        already, as another `make run` left it, it is used as it is)."""
        fresh = not (self.data / "PG_VERSION").exists()
        require_partman(find_program("initdb"))
        if fresh:
            self._run(
                find_program("initdb"),
                "-D",
                str(self.data),
                "-U",
                self.USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                *([] if self.durable else ["--no-sync"]),
            )
        if self.keep and self.running():
            return self
        options = [
            f"-p {self.port}",
            f"-c unix_socket_directories={self.folder}",
            "-c max_connections=200",
        ]
        options.append("-c listen_addresses=''" if self.keep else "-c listen_addresses=127.0.0.1")
        if not self.durable:
            # A test database is thrown away: durability only costs time here.
            options.append("-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
        self._run(
            find_program("pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "postgres.log"),
            "-o",
            " ".join(options),
            "-w",
            "-t",
            "60",
            "start",
        )
        if fresh:
            self._run(find_program("createdb"), *self._client_args(), self.DATABASE)
        return self

    def stop(self) -> None:
        """Stop the server: a throwaway one at once and its folder removed, a kept one cleanly."""
        mode = "fast" if self.keep else "immediate"
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            self._run(find_program("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
        if not self.keep:
            shutil.rmtree(self.folder, ignore_errors=True)


class RedisReplica(RedisServer):
    """A throwaway Redis replicating `primary` (for the Sentinel tests)."""

    def __init__(self, primary: RedisServer) -> None:
        super().__init__()
        self.extra_args = ("--replicaof", "127.0.0.1", str(primary.port))


class RedisSentinel(RedisServer):
    """A throwaway Redis Sentinel (`redis-server <conf> --sentinel`: the same binary) that
    monitors `master` at `primary`; its times lowered so that a failover takes seconds."""

    def __init__(self, master: str, primary: RedisServer, *, down_after_ms: int = 1000) -> None:
        super().__init__()
        self.config = self.folder / "sentinel.conf"
        self.config.write_text(  # Sentinel rewrites its config file: it must be its own
            f"port {self.port}\nbind 127.0.0.1\ndir {self.folder}\n"
            f"sentinel monitor {master} 127.0.0.1 {primary.port} 2\n"
            f"sentinel down-after-milliseconds {master} {down_after_ms}\n"
            f"sentinel failover-timeout {master} {down_after_ms * 3}\n"
            f"sentinel parallel-syncs {master} 1\n"
        )

    def start(self) -> RedisSentinel:
        self.process = subprocess.Popen(
            [find_program("redis-server"), str(self.config), "--sentinel", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self


class SentinelCluster:
    """A primary, a replica and three sentinels (quorum 2) on loopback, as production's Redis
    with failover (docs/deploy.md, "Redis failover")."""

    MASTER = "fleetport"

    def __init__(self, *, down_after_ms: int = 1000) -> None:
        self.primary = RedisServer()
        self.replica = RedisReplica(self.primary)
        self.sentinels = [
            RedisSentinel(self.MASTER, self.primary, down_after_ms=down_after_ms) for _ in range(3)
        ]

    @property
    def env(self) -> dict[str, str]:
        """What a portal process needs to use it (portal/settings/base.py)."""
        return {
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels),
            "REDIS_SENTINEL_MASTER": self.MASTER,
            "REDIS_URL": "redis://127.0.0.1:1/0",  # unused with sentinels (only its database 0)
        }

    def ask(self, *command: str) -> Any:
        import redis

        for sentinel in self.sentinels:
            client = redis.Redis(port=sentinel.port, socket_timeout=1, decode_responses=True)
            try:
                return client.execute_command(*command)
            except redis.RedisError:
                continue
            finally:
                client.close()
        raise RuntimeError("no sentinel answered")

    def master_port(self) -> int:
        return int(self.ask("SENTINEL", "get-master-addr-by-name", self.MASTER)[1])

    def start(self, timeout: float = 30.0) -> SentinelCluster:
        """Start them all and wait until every sentinel knows the replica and the others."""
        import redis

        self.primary.start()
        self.replica.start()
        for sentinel in self.sentinels:
            sentinel.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = True
            for sentinel in self.sentinels:
                client = redis.Redis(port=sentinel.port, socket_timeout=1, decode_responses=True)
                master: Any = client.sentinel_master(self.MASTER)
                client.close()
                ready &= master["num-slaves"] == 1 and master["num-other-sentinels"] == 2
            replica = redis.Redis(port=self.replica.port, socket_timeout=1)
            ready &= replica.info("replication").get("master_link_status") == "up"
            replica.close()
            if ready:
                return self
            time.sleep(0.2)
        raise TimeoutError("the sentinels did not learn of the replica and each other in time")

    def stop(self) -> None:
        for server in (*self.sentinels, self.replica, self.primary):
            server.stop()
