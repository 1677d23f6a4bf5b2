"""Redis with Sentinel (docs/deploy.md, "Redis failover"): a primary, a replica and three
sentinels of the test's own, a real worker and uvicorn configured for them; the primary is
killed (SIGKILL) during a burst of heartbeats. Nothing acknowledged is lost or doubled, the
rest is refused with a code a device retries, and live frames resume without a restart."""

from __future__ import annotations

import json
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from websockets.sync.client import ClientConnection

from fleet.models import AssetModel, Heartbeat, IngestInbox
from portal.models import User
from tests.fleet.burst import send_burst
from tests.fleet.conftest import Installed, install
from tests.integration import post_ingest, start_asgi, start_worker, stop_process, wait_until
from tests.live_sockets import open_socket
from tests.services import SentinelCluster

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)


def readings(n: int, *, offset: int = 0) -> list[dict[str, Any]]:
    """n readings, a second apart, ending well before now."""
    return [
        {
            "seq": seq,
            "ts": (START + timedelta(seconds=seq)).isoformat(),
            "status": "ok",
            "metrics": {"run_hours": round(seq * 0.01, 2), "temp_c": 60.0},
        }
        for seq in range(offset, offset + n)
    ]


def asset_socket(base: str, user: User, installed: Installed) -> ClientConnection:
    """/ws/live/ as the asset page opens it (session cookie, exact origin), subscribed to the asset."""
    client = Client()
    client.force_login(user)
    sock = open_socket(base, client.cookies["sessionid"].value)
    sock.send(json.dumps({"type": "subscribe", "topic": "asset", "id": str(installed.asset.pk)}))
    assert json.loads(sock.recv(timeout=10))["type"] == "subscribed"
    return sock


def wait_for_values(sock: ClientConnection, last_seen_at: str, timeout: float = 30) -> None:
    """Read frames until one carries the asset's values as of `last_seen_at`."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        frame = json.loads(sock.recv(timeout=left))
        for message in frame if isinstance(frame, list) else [frame]:
            if message.get("type") == "asset.values" and message.get("last_seen_at") == last_seen_at:
                return
    raise AssertionError(f"no live frame with the values of {last_seen_at}")


def test_a_sentinel_failover_mid_burst_loses_nothing_and_live_frames_resume(
    service_env: dict[str, str], viewer_a: User, compressor: AssetModel
) -> None:
    installed = install(viewer_a.customer, compressor, "SENT-0001")
    cluster = SentinelCluster().start()
    env = {**service_env, **cluster.env}
    worker = server = None
    sockets: list[ClientConnection] = []
    codes: list[int] = []
    accepted: list[dict[str, Any]] = []
    try:
        worker = start_worker(env, name="sentinel")
        server, base = start_asgi(env, name="asgi-sentinel")
        # Given a socket that gets the asset's live frames through the primary
        before = asset_socket(base, viewer_a, installed)
        sockets.append(before)
        first = readings(1)
        assert post_ingest(base, installed.token, first) == 202
        accepted += first
        wait_for_values(before, first[0]["ts"])

        # When the primary is killed during a burst
        chunks = [readings(50, offset=1 + 50 * i) for i in range(160)]
        sender = send_burst(base, installed.token, chunks, pause=0.02, codes=codes, accepted=accepted)
        wait_until(lambda: len(codes) >= 20, what="the burst to start", timeout=60)
        old_primary = cluster.primary.port
        cluster.primary.process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        killed_at = time.monotonic()
        wait_until(lambda: cluster.master_port() != old_primary, what="the sentinels' failover", timeout=60)
        failover_seconds = time.monotonic() - killed_at
        sender.join(timeout=180)
        assert not sender.is_alive()

        # Then every request was acknowledged or refused with a code a device retries
        assert cluster.master_port() == cluster.replica.port
        assert 500 not in codes
        assert set(codes) <= {202, 429, 503}, codes
        assert codes.count(202) > 20
        # ... the same processes store what comes after the failover, and publish it live,
        # to the socket that stayed open and to one opened after it
        after = asset_socket(base, viewer_a, installed)
        sockets.append(after)
        last = readings(1, offset=1 + 50 * len(chunks))
        assert post_ingest(base, installed.token, last) == 202
        accepted += last
        wait_for_values(after, last[0]["ts"])
        wait_for_values(before, last[0]["ts"])
        # ... and each acknowledged heartbeat is stored exactly once
        wait_until(lambda: not IngestInbox.objects.exists(), timeout=120, what="the drain after the failover")
        stored = list(Heartbeat.objects.filter(device=installed.device).values_list("seq", flat=True))
        assert sorted(stored) == sorted(item["seq"] for item in accepted)
        assert worker.poll() is None
        assert server.poll() is None
        print(  # noqa: T201 - the figures of the run, for the report (pytest -s)
            f"failover {failover_seconds:.1f}s; codes {sorted((c, codes.count(c)) for c in set(codes))};"
            f" stored {len(stored)}"
        )
    finally:
        for sock in sockets:
            sock.close()
        for process in (server, worker):
            if process is not None:
                stop_process(process)
        cluster.stop()
