"""`/healthz`: the process answers. `/readyz`: database, Redis and a live Celery worker.

Each check is bounded in time and turns every failure into a state, never an exception:
a load balancer asks this while things are broken.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal import redis_conn
from portal.celery import app as celery_app

CHECK_TIMEOUT_SECONDS = 1


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return "ok"


def _check_redis() -> str:
    client = redis_conn.client(
        socket_timeout=CHECK_TIMEOUT_SECONDS, socket_connect_timeout=CHECK_TIMEOUT_SECONDS
    )
    try:
        client.ping()
    finally:
        client.close()
    return "ok"


def _check_celery() -> str:
    url, sentinel_options = redis_conn.celery_broker(
        settings.REDIS_URL, settings.REDIS_SENTINELS, settings.REDIS_SENTINEL_MASTER
    )
    with celery_app.connection_for_write(url=url, transport_options=sentinel_options) as conn:
        conn.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT_SECONDS)
        replies = celery_app.control.ping(timeout=CHECK_TIMEOUT_SECONDS, connection=conn)
    if not replies:
        raise RuntimeError("no worker answered")
    return f"ok ({len(replies)} worker{'s' if len(replies) != 1 else ''})"


def _run(check: Callable[[], str]) -> dict[str, object]:
    started = time.monotonic()
    try:
        state, ok = check(), True
    except Exception as exc:  # noqa: BLE001 - any failure is a state to report, not a 500
        state, ok = f"error: {type(exc).__name__}: {exc}"[:300], False
    return {"ok": ok, "state": state, "ms": round((time.monotonic() - started) * 1000, 1)}


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _run(_check_database), "redis": _run(_check_redis)}
    if checks["redis"]["ok"]:
        checks["celery"] = _run(_check_celery)
    else:
        checks["celery"] = {"ok": False, "state": "unknown: the broker (Redis) is down", "ms": 0.0}
    ready = all(c["ok"] for c in checks.values())
    return JsonResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503
    )
