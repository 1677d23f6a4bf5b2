"""Admission of heartbeats on the web side: the Redis clients, the device rate limit, the
backlog bound and the nudge that wakes a worker. docs/ingest.md, "Admission".

Each behaviour comes twice, side by side: once for the Django view (`view.py`; blocking
calls) and once for the lean ASGI endpoint (`endpoint.py`; an event loop, where the Redis
work of concurrent requests goes together in one round trip). The two answer alike; the
tests hold both to it (tests/fleet/test_ingest_lean.py).

Redis carries only nudges and rate counters. If it is down, the rate limit is not enforced
(accepting is safe: the inbox is in the database) and accepted heartbeats wait in the
database until the beat sweep (`fleet.ingest_sweep`) drains them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio
from django.conf import settings
from django.db.models import Sum

from fleet.models import IngestInbox
from portal import redis_conn

log = logging.getLogger(__name__)

DRAIN_TASK = "fleet.ingest_drain"  # sent by name: the web process never imports the worker's code


# ----------------------------------------------------------------------------- one Redis client

_redis_lock = threading.Lock()
_redis_client: redis.Redis | None = None
_async_redis: dict[str, Any] = {"loop": None, "client": None}


def redis_client() -> redis.Redis:
    """One blocking client (and pool) per process; it follows a Sentinel failover when
    REDIS_SENTINELS is set (portal/redis_conn.py)."""
    global _redis_client
    with _redis_lock:
        if _redis_client is None:
            _redis_client = redis_conn.client(socket_timeout=0.5, socket_connect_timeout=0.5)
        return _redis_client


def async_redis_client() -> redis.asyncio.Redis:
    """One redis.asyncio client per event loop (per process under uvicorn)."""
    loop = asyncio.get_running_loop()
    if _async_redis["loop"] is not loop:
        _async_redis["client"] = redis_conn.async_client(socket_timeout=0.5, socket_connect_timeout=0.5)
        _async_redis["loop"] = loop
    client: redis.asyncio.Redis = _async_redis["client"]
    return client


async def close_async_redis_client() -> None:
    """Close the running loop's client (tests; a server process just exits)."""
    if _async_redis["loop"] is asyncio.get_running_loop():
        await _async_redis["client"].aclose()
        _async_redis["loop"] = _async_redis["client"] = None


# ----------------------------------------------------------------------------- device rate limit


def _rate_key(device_id: str, window: int) -> str:
    return f"fleet:rate:{device_id}:{window}"


def _retry_after() -> int:
    return max(1, 60 - int(time.time() % 60))


# The window's counters, one INCR per request (a key may come more than once), in one command
# for any number of requests: a pipeline of INCR and EXPIRE cost the web process two commands
# to pack and two replies to parse per request. A key gets its expiry with its first count,
# in the same atomic step, so none lives on without one. Atomic per call on one Redis (a
# Sentinel's primary); under Redis Cluster, which Fleetport does not use, the keys of a call
# would have to share a slot.
RATE_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
  local count = redis.call('INCR', key)
  if count == 1 then redis.call('EXPIRE', key, ARGV[1]) end
  counts[i] = count
end
return counts
"""
RATE_KEY_SECONDS = 120  # two windows: a key outlives the minute it counts
_rate_scripts: dict[int, tuple[Any, Any]] = {}  # id(client) -> (client, its RATE_SCRIPT)


def _rate_script(client: Any) -> Any:
    """RATE_SCRIPT registered on `client` (a blocking or an asyncio one). Its calls load the
    script again where Redis lost it (a restart, a failover)."""
    known = _rate_scripts.get(id(client))
    if known is None or known[0] is not client:
        known = _rate_scripts[id(client)] = (client, client.register_script(RATE_SCRIPT))
    return known[1]


def rate_limit_hit(device_id: str, per_minute: int) -> int:
    """Seconds to wait when the device is over its rate this minute, else 0.

    A fixed one-minute window per device in Redis (RATE_SCRIPT). If Redis is unreachable the
    limit is not enforced (accepting is safe; the inbox is in the database).
    """
    key = _rate_key(device_id, int(time.time() // 60))
    try:
        client = redis_client()
        count = int(_rate_script(client)(keys=[key], args=[RATE_KEY_SECONDS], client=client)[0])
    except redis.RedisError:
        return 0
    return _retry_after() if count > per_minute else 0


class RateLimiter:
    """`rate_limit_hit` on an event loop, for many concurrent requests in one Redis command.

    Requests that arrive while a call is out wait for the next one, which counts all of them
    (RATE_SCRIPT with one key per request, as `rate_limit_hit` sends one). The answers are
    the same as one call each; only the cost per request is smaller.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[str, int, asyncio.Future[int]]] = []
        self._task: asyncio.Task[None] | None = None

    async def hit(self, device_id: str, per_minute: int) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((device_id, per_minute, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            window = int(time.time() // 60)
            retry_after = _retry_after()
            try:
                keys = [_rate_key(device_id, window) for device_id, _limit, _future in batch]
                client = async_redis_client()
                replies = await _rate_script(client)(keys=keys, args=[RATE_KEY_SECONDS], client=client)
                counts = [int(count) for count in replies]
            except (TimeoutError, redis.RedisError, OSError):
                counts = [0] * len(batch)  # not enforced without Redis, as in rate_limit_hit
            for (_device, limit, future), count in zip(batch, counts, strict=True):
                if not future.done():
                    future.set_result(retry_after if count > limit else 0)


# ----------------------------------------------------------------------------- backlog bound

_backlog = {"checked": 0.0, "pending": 0}


def backlog_pending(refresh_after: float = 1.0) -> int:
    """Accepted heartbeats not yet stored, read at most once a second per process."""
    now = time.monotonic()
    if now - _backlog["checked"] > refresh_after:
        _backlog["pending"] = IngestInbox.objects.aggregate(n=Sum("count"))["n"] or 0
        _backlog["checked"] = now
    return int(_backlog["pending"])


def backlog_exceeded() -> bool:
    return backlog_pending() > settings.INGEST_BACKLOG_LIMIT


_backlog_refreshing = {"busy": False}


async def backlog_exceeded_async(read_pending: Callable[[], Awaitable[int]]) -> bool:
    """`backlog_exceeded` on an event loop; `read_pending` is a coroutine function returning
    the inbox's SUM(count). One read at a time, at most once a second per process."""
    now = time.monotonic()
    if now - _backlog["checked"] > 1.0 and not _backlog_refreshing["busy"]:
        _backlog_refreshing["busy"] = True
        try:
            _backlog["pending"] = int(await read_pending())
            _backlog["checked"] = time.monotonic()
        finally:
            _backlog_refreshing["busy"] = False
    return int(_backlog["pending"]) > settings.INGEST_BACKLOG_LIMIT


# ----------------------------------------------------------------------------- the nudge

# The key says "a drain will look at the inbox after now": set with a drain task queued, and
# deleted by a drain only when it has found the inbox empty, after which it looks once more
# (drain()). A nudge that finds the key set needs no task of its own: the drain behind the key
# looks after this request's commit. The expiry bounds how long a lost task (a Redis restart)
# keeps nudges quiet; the beat sweep drains meanwhile.
NUDGE_KEY = "fleet:drain-nudged"


NUDGE_MS = 1000


def send_drain() -> None:
    """Queue a drain task (routed to the "ingest" queue by its name, CELERY_TASK_ROUTES)."""
    from portal.celery import app

    app.send_task(DRAIN_TASK)


def nudge() -> None:
    """Make sure a worker drains after this commit: queue a drain task unless one is due."""
    client = redis_client()
    try:
        if client.set(NUDGE_KEY, 1, nx=True, px=NUDGE_MS):
            try:
                send_drain()
            except Exception:
                client.delete(NUDGE_KEY)  # no task behind the key: let the next one try
                raise
    except Exception as exc:  # noqa: BLE001 - the heartbeat is durable; the sweep will drain it
        log.warning("ingest: could not nudge a worker (%s); the sweep will drain", type(exc).__name__)


def nudge_clear() -> None:
    """A drain found the inbox empty: later commits must queue a task (see NUDGE_KEY)."""
    try:
        redis_client().delete(NUDGE_KEY)
    except Exception as exc:  # noqa: BLE001 - the key expires; the sweep drains meanwhile
        log.warning("ingest: could not clear the nudge key (%s)", type(exc).__name__)


class Nudger:
    """`nudge` on an event loop, with one Redis round trip for many requests.

    Requests that commit while a round is in flight ask for another round, which starts when
    that one ends (at most one every NUDGE_PAUSE seconds while the key is set): every commit
    is followed by a SET NX of its own, which a drain clearing the key cannot have overtaken.
    The Celery publish runs in a thread.
    """

    NUDGE_PAUSE = 0.005

    def __init__(self) -> None:
        self._wanted = False
        self._busy = False
        self._tasks: set[asyncio.Task[None]] = set()

    def nudge(self) -> None:
        self._wanted = True
        if self._busy:
            return
        self._busy = True
        task = asyncio.create_task(self._rounds())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _rounds(self) -> None:
        try:
            while self._wanted:
                self._wanted = False
                if not await self._round():
                    await asyncio.sleep(self.NUDGE_PAUSE)
        finally:
            self._busy = False

    async def _round(self) -> bool:
        """SET NX; queue a drain task when it was not set. True when a task was queued."""
        client = async_redis_client()
        try:
            if await client.set(NUDGE_KEY, 1, nx=True, px=NUDGE_MS):
                try:
                    await asyncio.to_thread(send_drain)
                except Exception:
                    await client.delete(NUDGE_KEY)  # no task behind the key: let the next one try
                    raise
                return True
        except Exception as exc:  # noqa: BLE001 - the heartbeat is durable; the sweep will drain it
            log.warning("ingest: could not nudge a worker (%s); the sweep will drain", type(exc).__name__)
        return False
