"""PostgreSQL restarting during a burst (docs/ingest.md, "Outages"): a PostgreSQL of the test's
own (the suite's is shared by the whole session), a copy of the session's migrated cluster
(`migrated_cluster`, tests/conftest.py), with a real worker and uvicorn on it; it is stopped
as a crash would (immediate: no checkpoint, clients cut off) and started again on the same
port and folder. Ingest answers 503 with Retry-After meanwhile, never a 500,
within a bound; loses nothing it acknowledged and recovers on its own (pooled connections are
checked, a failed connect retried about every second: portal/dbpool.py) within seconds of
PostgreSQL accepting connections again, however long it was away."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings

from tests.integration import ROOT, start_asgi, start_worker, stop_process, wait_until
from tests.services import PostgresServer, RedisServer, find_program

pytestmark = [pytest.mark.integration]

START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)

# Long enough that psycopg_pool's own backoff (1, 2, 4, 8, 16 … s) would be caught out: its
# next attempt after this would come ~15 s after PostgreSQL was back.
DOWN_SECONDS = 16.0
# Each 503 while PostgreSQL is away comes within INGEST_DATABASE_POOL_TIMEOUT (1.5 s), plus one
# more on the lean door (a request that arrives while the writer's INSERT for earlier ones is
# waiting joins the next one), plus 1 s for this shared 2-core box: lean 2 × 1.5 + 1 s; the
# Django door, which waits that long for a connection instead of its pool's 10 s, 1.5 + 1 s.
ANSWER_BOUND = {
    True: 2 * settings.INGEST_DATABASE_POOL_TIMEOUT + 1.0,
    False: settings.INGEST_DATABASE_POOL_TIMEOUT + 1.0,
}
# The first 202 after PostgreSQL accepts connections again: a waiting request's pool tries a
# connect at least every ~1 s (portal/dbpool.py); a request that was waiting the whole while
# may still end in its 503, and the burst's next one is sent right after. 5 s leaves room.
RECOVERY_BOUND = 5.0

# Run against the test's own database by `python -c`: a customer, an asset model, two assets
# with a device each; prints the devices' ids and tokens.
INSTALL = """
import json, django
django.setup()
from fleet import services
from tests.factories import CustomerFactory, SiteFactory
site = SiteFactory(customer=CustomerFactory(slug="pg-restart"))
model = services.asset_model_create(actor=None, code="pg-restart", name="Compressor",
    heartbeat_interval_seconds=60, metrics=[services.metric("run_hours", "Run hours", "h", "counter")])
devices = []
for n in (1, 2):
    asset = services.asset_create(actor=None, site=site, model=model, serial_number=f"PG-{n}", name=f"PG {n}")
    device, token = services.device_install(actor=None, asset=asset, serial_number=f"GW-PG-{n}")
    devices.append({"device": str(device.pk), "token": token})
print(json.dumps(devices))
"""


def readings(n: int, *, offset: int = 0) -> list[dict[str, Any]]:
    return [
        {
            "seq": seq,
            "ts": (START + timedelta(seconds=seq)).isoformat(),
            "status": "ok",
            "metrics": {"run_hours": seq * 0.01},
        }
        for seq in range(offset, offset + n)
    ]


def post(base: str, token: str, body: Any) -> tuple[int, str | None]:
    """POST heartbeats as a device does: the status code and the Retry-After header."""
    request = urllib.request.Request(  # noqa: S310 - the test's own loopback server
        f"{base}/api/v1/ingest/heartbeats",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Device {token}"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback only
            return int(response.status), response.headers.get("Retry-After")
    except urllib.error.HTTPError as error:
        return int(error.code), error.headers.get("Retry-After")


def python(env: dict[str, str], *args: str) -> str:
    """Run our Python with `env` (the test's own database); returns what it printed."""
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def stored_seqs(postgres: PostgresServer, device: str) -> list[int]:
    with psycopg.connect(postgres.url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        rows = conn.execute("SELECT seq FROM fleet_heartbeat WHERE device_id = %s", [device]).fetchall()
    return [int(row[0]) for row in rows]


def inbox_empty(postgres: PostgresServer) -> bool:
    with psycopg.connect(postgres.url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
        return conn.execute("SELECT NOT EXISTS (SELECT 1 FROM fleet_ingestinbox)").fetchone() == (True,)


@pytest.mark.parametrize("lean", [True, False], ids=["lean-door", "django-door"])
def test_a_postgres_restart_mid_burst_answers_503_and_loses_nothing(
    lean: bool, migrated_cluster: Callable[[Path], None]
) -> None:
    postgres = PostgresServer()
    migrated_cluster(postgres.data)
    postgres.start()
    redis = RedisServer().start()  # its own: the suite's worker must not drain this database
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.test",
        "DATABASE_URL": postgres.url,
        "DATABASE_POOL": "1",  # production's pools: they must notice the restart themselves
        "REDIS_URL": redis.url,
        "INGEST_LEAN_PATH": "1" if lean else "0",
        "PYTHONUNBUFFERED": "1",
    }
    worker = server = None
    codes: list[tuple[int, str | None]] = []
    took: list[float] = []  # seconds per request
    answered: list[float] = []  # when each answer came (monotonic)
    accepted: list[int] = []
    try:
        with psycopg.connect(postgres.url.replace("postgres://", "postgresql://"), autocommit=True) as conn:
            # A crash must not lose what was committed: the throwaway server defers WAL flushes
            # (synchronous_commit=off on its command line, which a database's setting overrides).
            conn.execute(f"ALTER DATABASE {PostgresServer.DATABASE} SET synchronous_commit = on")
        device, newcomer = json.loads(python(env, "-c", INSTALL))
        worker = start_worker(env, name="pg-restart")
        server, base = start_asgi(env, name="asgi-pg-restart")
        assert post(base, device["token"], readings(1))[0] == 202
        accepted.append(0)

        chunks = [readings(20, offset=1 + 20 * i) for i in range(300)]
        done = threading.Event()

        def burst() -> None:
            for chunk in chunks:
                sent_at = time.monotonic()
                answer = post(base, device["token"], chunk)
                answered.append(time.monotonic())
                took.append(answered[-1] - sent_at)
                codes.append(answer)
                if answer[0] == 202:
                    accepted.extend(item["seq"] for item in chunk)
                if done.is_set():
                    return
                time.sleep(0.02)

        sender = threading.Thread(target=burst)
        sender.start()
        wait_until(lambda: len(codes) >= 20, what="the burst to start", timeout=60)
        pg_ctl = [*postgres.run_as, find_program("pg_ctl"), "-D", str(postgres.data), "-w"]
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], check=True, capture_output=True)
        stopped = time.monotonic()
        # A device the server has not seen yet needs a lookup in the database: refused alike.
        status, retry_after = post(base, newcomer["token"], readings(1))
        newcomer_took = time.monotonic() - stopped
        assert (status, retry_after) == (503, "5")
        stopped_at = len(codes)
        wait_until(
            lambda: len(codes) >= stopped_at + 3 and time.monotonic() - stopped >= DOWN_SECONDS,
            what="requests while it is down",
            timeout=120,
        )
        postgres.start()  # the same folder and port; returns once it accepts connections
        back = time.monotonic()

        def first_202_after(moment: float) -> float | None:
            pairs = zip(answered, codes, strict=False)  # the sender may be between the two
            return min((at for at, (code, _) in pairs if at > moment and code == 202), default=None)

        wait_until(lambda: first_202_after(back) is not None, what="a 202 after the restart", timeout=120)
        first_202 = first_202_after(back) or 0.0
        done.set()
        sender.join(timeout=120)

        statuses = [code for code, _ in codes]
        assert 500 not in statuses
        assert set(statuses) <= {202, 503}, statuses
        assert 503 in statuses
        assert all(retry for code, retry in codes if code == 503)
        # While it is down each request hears its 503 within the bound, not after a long wait;
        # once it is back, ingest takes heartbeats again within seconds, not after a backoff.
        slowest_503 = max([newcomer_took, *(t for t, (c, _) in zip(took, codes, strict=True) if c == 503)])
        assert slowest_503 <= ANSWER_BOUND[lean], (slowest_503, took, statuses)
        assert first_202 - back <= RECOVERY_BOUND, (first_202 - back, took, statuses)
        # The same processes store what comes after; each acknowledged heartbeat once.
        assert post(base, newcomer["token"], readings(1))[0] == 202
        last = readings(1, offset=1 + 20 * len(chunks))
        assert post(base, device["token"], last)[0] == 202
        accepted.append(last[0]["seq"])
        wait_until(lambda: inbox_empty(postgres), what="the drain after the restart", timeout=120)
        stored = stored_seqs(postgres, device["device"])
        assert len(stored) == len(set(stored))
        assert set(accepted) <= set(stored)
        assert worker.poll() is None
        assert server.poll() is None
        print(  # noqa: T201 - the figures of the run, for the report (pytest -s)
            f"down {back - stopped:.1f}s, first 202 {first_202 - back:.1f}s after it accepted again;"
            f" codes {sorted((c, statuses.count(c)) for c in set(statuses))}; slowest 503"
            f" {slowest_503:.1f}s, slowest answer {max(took):.1f}s; accepted {len(accepted)};"
            f" stored {len(stored)}"
        )
    finally:
        for process in (server, worker):
            if process is not None:
                stop_process(process)
        redis.stop()
        postgres.stop()


def test_the_django_door_answers_a_stopped_postgres_within_the_bound(
    migrated_cluster: Callable[[Path], None],
) -> None:
    """Django's pool waits 10 s for a connection; the Django door asks for one with the lean
    door's wait (portal/dbpool.py `connection_ready`), so its 503 comes as soon."""
    postgres = PostgresServer()
    migrated_cluster(postgres.data)
    postgres.start()
    redis = RedisServer().start()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings.test",
        "DATABASE_URL": postgres.url,
        "DATABASE_POOL": "1",
        "REDIS_URL": redis.url,
        "INGEST_LEAN_PATH": "0",  # every request through Django's view
        "PYTHONUNBUFFERED": "1",
    }
    server = None
    try:
        device, newcomer = json.loads(python(env, "-c", INSTALL))
        server, base = start_asgi(env, name="asgi-pg-stopped")
        assert post(base, device["token"], readings(1))[0] == 202  # the pool is open and full
        pg_ctl = [*postgres.run_as, find_program("pg_ctl"), "-D", str(postgres.data), "-w"]
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], check=True, capture_output=True)

        answers: list[tuple[int, str | None, float]] = []
        # The first finds the pool's dead connections, the next ones an empty pool; a device
        # seen before (its identity cached) and one the server has not seen yet alike.
        for token, offset in ((device["token"], 1), (device["token"], 2), (newcomer["token"], 0)):
            sent_at = time.monotonic()
            status, retry_after = post(base, token, readings(1, offset=offset))
            answers.append((status, retry_after, time.monotonic() - sent_at))

        assert [(status, retry) for status, retry, _ in answers] == [(503, "5")] * 3
        assert max(took for _, _, took in answers) <= ANSWER_BOUND[False], answers
        # Without a token nothing needs the database: 401 at once, as before.
        sent_at = time.monotonic()
        assert post(base, "", readings(1))[0] == 401
        assert time.monotonic() - sent_at < 1.0
        assert server.poll() is None
        print(f"503 after {[round(took, 2) for _, _, took in answers]} s")  # noqa: T201 - figures
    finally:
        if server is not None:
            stop_process(server)
        redis.stop()
        postgres.stop()
