"""The pipeline with real parts: HTTP → inbox → Redis → Celery worker → PostgreSQL.

Fault tests kill the worker (a child, then the main process) and restart Redis in the middle
of the work, then check that every heartbeat that got a 202 is stored exactly once and that
usage comes out as if nothing had happened.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from fleet.models import AssetModel, Heartbeat, HourlyUsage, IngestInbox
from fleet.tasks import ingest_sweep
from fleet.usage import usage_truth
from portal.models import Customer
from tests.fleet.burst import send_burst
from tests.fleet.conftest import Installed, install
from tests.integration import post_ingest, start_asgi, start_worker, stop_process, wait_until
from tests.services import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

URL = "/api/v1/ingest/heartbeats"
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=5)


def history(n: int, *, offset: int = 0) -> list[dict[str, Any]]:
    """n readings, ten seconds apart, of a counter that rises and resets every 700 readings."""
    return [
        {
            "seq": seq,
            "ts": (START + timedelta(seconds=10 * seq)).isoformat(),
            "status": "ok",
            "metrics": {"run_hours": round((seq % 700) * 0.25, 2), "temp_c": 60.0},
        }
        for seq in range(offset, offset + n)
    ]


def expected_usage(items: list[dict[str, Any]]) -> dict[datetime, Decimal]:
    truth = usage_truth(
        [(i["seq"], i["metrics"]["run_hours"], datetime.fromisoformat(i["ts"])) for i in items]
    )
    return {hour: q for hour, q in truth.items() if q}


def stored_usage(installed: Installed) -> dict[datetime, Decimal]:
    rows = HourlyUsage.objects.filter(asset=installed.asset, metric="run_hours")
    return {u.hour: u.quantity for u in rows if u.quantity}


def post_in_process(installed: Installed, items: list[dict[str, Any]], chunk: int = 500) -> int:
    accepted = 0
    for start in range(0, len(items), chunk):
        response = Client().post(
            URL,
            data=json.dumps(items[start : start + chunk]),
            content_type="application/json",
            **installed.auth,
        )
        assert response.status_code == 202, response.content
        accepted += response.json()["accepted"]
    return accepted


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.fixture
def fleet_live(customer_a: Customer, compressor: AssetModel) -> Installed:
    return install(customer_a, compressor, "LIVE-1")


def test_n_heartbeats_posted_are_n_stored(live_worker: Any, fleet_live: Installed) -> None:
    items = history(3000)
    assert post_in_process(fleet_live, items) == 3000
    post_in_process(fleet_live, items[:1000])  # a device retrying: duplicates
    wait_until(lambda: not IngestInbox.objects.exists(), what="the worker to drain the inbox", timeout=90)
    assert Heartbeat.objects.filter(device=fleet_live.device).count() == 3000
    assert stored_usage(fleet_live) == expected_usage(items)


@pytest.fixture
def own_worker(service_env: dict[str, str]) -> Iterator[dict[str, Any]]:
    """A worker of this test's own, to kill. Yields a holder so a restart can replace it."""
    holder = {"process": start_worker(service_env, name="victim", concurrency=2), "env": service_env}
    yield holder
    stop_process(holder["process"])


def _kill_while_storing(fleet: Installed, total: int, kill: Callable[[int], None]) -> None:
    wait_until(
        lambda: 0 < Heartbeat.objects.filter(device=fleet.device).count() < total,
        timeout=60,
        what="the worker to be in the middle of the backlog",
    )
    kill(total)


@pytest.mark.parametrize("victim", ["child", "main"])
def test_kill_9_of_a_worker_loses_and_duplicates_nothing(
    own_worker: dict[str, Any], fleet_live: Installed, victim: str
) -> None:
    items = history(20_000)
    assert post_in_process(fleet_live, items, chunk=1000) == 20_000
    main = own_worker["process"]

    def kill(_total: int) -> None:
        if victim == "child":
            for pid in children_of(main.pid):
                os.kill(pid, signal.SIGKILL)
        else:
            os.kill(main.pid, signal.SIGKILL)
            main.wait()
            for pid in children_of(main.pid):  # orphans, if any survived their parent
                os.kill(pid, signal.SIGKILL)
            own_worker["process"] = start_worker(own_worker["env"], name="victim", concurrency=2)

    _kill_while_storing(fleet_live, len(items), kill)
    ingest_sweep.delay()  # what beat does every few seconds
    wait_until(
        lambda: not IngestInbox.objects.exists(), timeout=120, what="the inbox to drain after the kill"
    )
    assert Heartbeat.objects.filter(device=fleet_live.device).count() == len(items)
    assert stored_usage(fleet_live) == expected_usage(items)


def test_a_redis_restart_mid_burst_loses_nothing(service_env: dict[str, str], fleet_live: Installed) -> None:
    redis_server = RedisServer().start()
    env = {**service_env, "REDIS_URL": redis_server.url}
    worker = server = None
    codes: list[int] = []
    accepted: list[dict[str, Any]] = []
    try:
        worker = start_worker(env, name="redis-restart")
        server, base = start_asgi(env, name="asgi-redis-restart")
        items = history(6000)
        chunks = [items[i : i + 100] for i in range(0, len(items), 100)]
        sender = send_burst(base, fleet_live.token, chunks, pause=0.01, codes=codes, accepted=accepted)
        wait_until(lambda: len(codes) >= 15, what="the burst to start", timeout=90)
        redis_server.process.terminate()  # type: ignore[union-attr]
        redis_server.process.wait()  # type: ignore[union-attr]
        time.sleep(1.0)
        redis_server = RedisServer.on_port(redis_server.port).start()  # same address, empty
        sender.join(timeout=120)

        assert 500 not in codes
        assert set(codes) <= {202, 503}
        assert len(accepted) > 0
        # After the restart, the next accepted request nudges the same worker, unrestarted.
        assert post_ingest(base, fleet_live.token, history(1, offset=6000)) == 202
        accepted.extend(history(1, offset=6000))
        wait_until(lambda: not IngestInbox.objects.exists(), timeout=120, what="the drain after the restart")
        assert Heartbeat.objects.filter(device=fleet_live.device).count() == len(accepted)
        assert worker.poll() is None
        assert stored_usage(fleet_live) == expected_usage(accepted)
    finally:
        for process in (server, worker):
            if process is not None:
                stop_process(process)
        redis_server.stop()


def test_every_heartbeat_is_drained_promptly_without_the_sweep(
    live_worker: Any, asgi_server: str, fleet_live: Installed
) -> None:
    """Heartbeats one at a time, some while a drain is just ending: each request's nudge must
    reach a worker (no beat sweep runs here, so a nudge skipped in error leaves a row for good).
    """
    sent = 0
    for seq in range(60):
        assert post_ingest(asgi_server, fleet_live.token, history(1, offset=seq)) == 202
        sent += 1
        time.sleep(0.015 * (seq % 4))  # 0-45 ms apart: drains end between requests
    wait_until(lambda: not IngestInbox.objects.exists(), timeout=5, what="every row to be drained")
    assert Heartbeat.objects.filter(device=fleet_live.device).count() == sent


def test_a_nudge_after_a_drain_ended_queues_the_next_drain(monkeypatch: pytest.MonkeyPatch) -> None:
    """The nudge key means "a drain will look at the inbox after now": a request committing
    after a drain ended (and cleared the key) must queue another task, even right after a
    nudge of the same process found the key set."""
    import asyncio

    from fleet.ingest import admission

    queued: list[int] = []
    monkeypatch.setattr(admission, "send_drain", lambda: queued.append(1))  # no real worker here
    # A key of its own: a session-wide worker finishing an earlier test's drain clears the real one.
    monkeypatch.setattr(admission, "NUDGE_KEY", f"{admission.NUDGE_KEY}:test-{os.getpid()}")
    client = admission.redis_client()
    client.delete(admission.NUDGE_KEY)

    async def scenario() -> None:
        nudger = admission.Nudger()
        for _ in range(5):  # a burst: one task
            nudger.nudge()
        await asyncio.sleep(0.1)
        assert queued == [1]
        nudger.nudge()  # the key is set: the queued task will see this commit
        await asyncio.sleep(0.1)
        assert queued == [1]
        admission.nudge_clear()  # a drain found the inbox empty
        nudger.nudge()
        await asyncio.sleep(0.1)
        assert queued == [1, 1]

    asyncio.run(scenario())
    client.delete(admission.NUDGE_KEY)
