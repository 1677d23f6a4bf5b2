"""`/healthz` and `/readyz`: a broken part is a state in the answer, never a 500."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.services import RedisServer


def test_healthz_answers_without_a_database(client: Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


@pytest.fixture
def own_redis(settings):
    """A Redis of this test's own, so stopping it does not disturb the rest of the suite."""
    server = RedisServer().start()
    settings.REDIS_URL = server.url
    yield server
    server.stop()


def test_readyz_reports_redis_down_as_not_ready(db: None, client: Client, own_redis: RedisServer) -> None:
    before = client.get("/readyz").json()
    assert before["checks"]["redis"]["ok"] is True
    assert before["checks"]["database"]["ok"] is True

    own_redis.stop()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not ready"
    assert body["checks"]["database"] == {"ok": True, "state": "ok", "ms": body["checks"]["database"]["ms"]}
    assert body["checks"]["redis"]["ok"] is False
    assert "ConnectionError" in body["checks"]["redis"]["state"]
    assert body["checks"]["celery"]["ok"] is False


def test_readyz_without_a_worker_is_not_ready(db: None, client: Client, own_redis: RedisServer) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["celery"]["state"].startswith("error")


@pytest.mark.integration
def test_readyz_is_ready_with_a_live_worker(transactional_db: None, live_worker, client: Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["celery"]["state"].startswith("ok (")
