"""The reconnect policy of our psycopg pools: Django's (settings.DATABASES) and the lean ingest
door's (fleet/ingest/endpoint.py). docs/ingest.md, "Outages", says what it bounds.

psycopg_pool retries a failed connect after 1, 2, 4, 8 … s for `reconnect_timeout` (5 minutes
by default), so after an outage its next attempt came as late as the outage had lasted. Our
pools get a short window instead (`RECONNECT_SECONDS`): a connect is retried after ~1 s, once
more at the window's end, and then given up. When requests are waiting for a connection at
that moment, `reconnect_failed` starts a fresh attempt at once, so while anyone waits a
connect is tried about every second and a PostgreSQL that is back is found within about that.
With no one waiting the pool stays quiet; the next request that waits starts an attempt.

`connection_ready` lets one path wait less than Django's pool `timeout` for a connection (the
Django ingest door: docs/ingest.md, "Outages") without changing it for everyone else.
"""

from __future__ import annotations

from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

# How long one failed connect is retried (psycopg_pool's `reconnect_timeout`).
RECONNECT_SECONDS = 2.0


def _waiting(pool: ConnectionPool[Any] | AsyncConnectionPool[Any]) -> bool:
    return pool.get_stats().get("requests_waiting", 0) > 0


def reconnect_failed(pool: ConnectionPool[Any]) -> None:
    """psycopg_pool's `reconnect_failed` hook (a sync pool): try again now if requests wait.

    `check()` grows a pool that holds no connection, which starts a new connect attempt.
    """
    if _waiting(pool):
        pool.check()


async def reconnect_failed_async(pool: AsyncConnectionPool[Any]) -> None:
    """`reconnect_failed` for an asyncio pool (the lean ingest door's)."""
    if _waiting(pool):
        await pool.check()


def connection_ready(*, within: float, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether Django's pool for `using` hands this thread a connection within `within` s.

    Django takes pooled connections with the pool's own `timeout` (10 s, right for a busy
    pool), so while PostgreSQL is away a request waits that long before its error. A path
    that should give up sooner asks this first: it takes a connection with its shorter wait
    (checked as any checkout is) and puts it straight back, where the ORM's next checkout
    finds it. The cost is one more checkout and health check per call. Without a pool, or
    with this thread's connection already open, True: a refused connect fails at once.
    """
    wrapper = connections[using]
    pool: ConnectionPool[Any] | None = getattr(wrapper, "pool", None)  # PostgreSQL's wrapper only
    if pool is None or wrapper.connection is not None:
        return True
    pool.open()
    try:
        held = pool.getconn(timeout=within)
    except PoolTimeout:
        return False
    pool.putconn(held)
    return True
