"""Redis connections that follow a Sentinel failover (docs/deploy.md, "Redis failover").

Three things use Redis: Celery's broker, the live channel layer, and our own clients (ingest
nudges and rate counters, the device-auth generation, health checks). With REDIS_SENTINELS
unset, each connects to REDIS_URL as before. With REDIS_SENTINELS="host:port,host:port" (and
REDIS_SENTINEL_MASTER, the name the sentinels monitor), each asks the sentinels for the
current primary whenever it (re)connects, so a failover is followed without a restart:

- Celery: kombu's `sentinel://` transport, `master_name` in the transport options
  (`celery_broker`, used by portal/settings/base.py);
- the channel layer: channels_redis's host entry with `sentinels` and `master_name`
  (`channel_layer_host`), which builds redis-py's asyncio `SentinelConnectionPool`;
- our clients: redis-py's `Sentinel(...).master_for(...)`, blocking or asyncio (`client`,
  `async_client`).

REDIS_URL still gives the database number and the password of the primary in that mode.
The settings module imports this one: nothing here reads Django's settings at import time.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel

Sentinels = list[tuple[str, int]]

# How long a question to a sentinel may take: a sentinel that is down is skipped for the next.
SENTINEL_TIMEOUT = 0.5


def parse_sentinels(value: str) -> Sentinels:
    """ "host:port,host:port" → [(host, port), ...]; an empty value → [] (no Sentinel)."""
    sentinels: Sentinels = []
    for entry in value.split(","):
        entry = entry.strip()
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"REDIS_SENTINELS: {entry!r} is not host:port")
        sentinels.append((host.strip("[]"), int(port)))
    return sentinels


def _primary_options(redis_url: str) -> dict[str, Any]:
    """The database number and credentials of REDIS_URL, for the primary the sentinels name."""
    parts = urlsplit(redis_url)
    options: dict[str, Any] = {"db": int(parts.path.strip("/") or 0)}
    if parts.username:
        options["username"] = unquote(parts.username)
    if parts.password:
        options["password"] = unquote(parts.password)
    return options


def celery_broker(redis_url: str, sentinels: Sentinels, master: str) -> tuple[str, dict[str, Any]]:
    """Celery's broker URL and the transport options it needs beyond ours."""
    if not sentinels:
        return redis_url, {}
    options = _primary_options(redis_url)
    auth = f":{quote(options['password'], safe='')}@" if "password" in options else ""
    url = ";".join(f"sentinel://{auth}{host}:{port}/{options['db']}" for host, port in sentinels)
    transport = {
        "master_name": master,
        "sentinel_kwargs": {"socket_timeout": SENTINEL_TIMEOUT, "socket_connect_timeout": SENTINEL_TIMEOUT},
    }
    return url, transport


def channel_layer_host(redis_url: str, sentinels: Sentinels, master: str, **options: Any) -> dict[str, Any]:
    """One channels_redis host entry: REDIS_URL's address, or the sentinels and the master's name."""
    if not sentinels:
        return {"address": redis_url, **options}
    return {
        "sentinels": sentinels,
        "master_name": master,
        "sentinel_kwargs": {"socket_timeout": SENTINEL_TIMEOUT, "socket_connect_timeout": SENTINEL_TIMEOUT},
        **_primary_options(redis_url),
        **options,
    }


def client(**options: Any) -> redis.Redis:
    """A blocking client of the current primary (options: socket timeouts and the like)."""
    from django.conf import settings

    if not settings.REDIS_SENTINELS:
        return redis.Redis.from_url(settings.REDIS_URL, **options)
    sentinel = redis.sentinel.Sentinel(
        settings.REDIS_SENTINELS,
        sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT, "socket_connect_timeout": SENTINEL_TIMEOUT},
    )
    return sentinel.master_for(
        settings.REDIS_SENTINEL_MASTER, **_primary_options(settings.REDIS_URL), **options
    )


def async_client(**options: Any) -> redis.asyncio.Redis:
    """`client` for an event loop (redis.asyncio)."""
    from django.conf import settings

    if not settings.REDIS_SENTINELS:
        return redis.asyncio.Redis.from_url(settings.REDIS_URL, **options)
    sentinel = redis.asyncio.sentinel.Sentinel(
        settings.REDIS_SENTINELS,
        sentinel_kwargs={"socket_timeout": SENTINEL_TIMEOUT, "socket_connect_timeout": SENTINEL_TIMEOUT},
    )
    return sentinel.master_for(
        settings.REDIS_SENTINEL_MASTER, **_primary_options(settings.REDIS_URL), **options
    )
