"""Device authentication for the ingest doors: the token's hash looked up, cached per process.
docs/ingest.md, "Device tokens".

Twice, side by side: `authenticate_device` for the Django view (the ORM) and
`authenticate_device_async` for the lean endpoint (one SQL statement through its async
psycopg pool, never blocking the event loop). Both share the cache and the rules.

Results are cached in each process for up to `DEVICE_AUTH_CACHE_MAX_SECONDS` and dropped
within about a second of a revocation, rotation or swap (a generation counter in Redis that
fleet.credentials bumps after commit; `DEVICE_AUTH_CACHE_SECONDS` without Redis), which
bounds how long a revoked token can still be accepted anywhere: "within seconds".
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
from django.conf import settings
from django.utils import timezone

from fleet.ingest.admission import async_redis_client, redis_client
from fleet.models import DeviceCredential, credential_valid_at

TOKEN_PREFIX = "fpd_"  # noqa: S105 - a public marker, not a secret


@dataclass(frozen=True)
class DeviceIdentity:
    """What the ingest path needs to know about an authenticated device."""

    device_id: str
    customer_id: str
    asset_id: str
    rate_limit_per_minute: int
    metrics: dict[str, str]  # metric code -> "gauge" | "counter"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# token hash -> (monotonic expiry, auth generation when cached, identity or None)
_cache: dict[str, tuple[float, int | None, DeviceIdentity | None]] = {}
_cache_lock = threading.Lock()
GENERATION_KEY = "fleet:device-auth-generation"
_generation: dict[str, Any] = {"value": None, "read_at": float("-inf")}


def _current_generation() -> int | None:
    """The shared auth generation, read from Redis at most once a second per process.

    Every revocation, rotation and device swap bumps it, so cached identities everywhere are
    dropped within about a second; None when Redis cannot be reached.
    """
    now = time.monotonic()
    if now - _generation["read_at"] >= 1.0:
        try:
            _generation["value"] = int(redis_client().get(GENERATION_KEY) or 0)
        except (redis.RedisError, ValueError):
            _generation["value"] = None
        _generation["read_at"] = now
    return _generation["value"]


async def _current_generation_async() -> int | None:
    """`_current_generation` for an event loop: the Redis read does not block the loop."""
    now = time.monotonic()
    if now - _generation["read_at"] >= 1.0:
        _generation["read_at"] = now  # one reader at a time; the others use the value they have
        try:
            _generation["value"] = int(await async_redis_client().get(GENERATION_KEY) or 0)
        except (redis.RedisError, OSError, ValueError):
            _generation["value"] = None
    return _generation["value"]


def bump_generation() -> None:
    """Invalidate every process's cached device identities (called after commit)."""
    # Without Redis the short fallback TTL bounds how long a cached token lives.
    with contextlib.suppress(redis.RedisError):
        redis_client().incr(GENERATION_KEY)
    _generation["read_at"] = float("-inf")
    clear_auth_cache()


def clear_auth_cache() -> None:
    with _cache_lock:
        _cache.clear()


def lookup(token: str, token_hash: str) -> tuple[DeviceIdentity | None, datetime | None]:
    """The identity a token (whose hash is `token_hash`) stands for, and when its credential
    stops being valid."""
    parts = token.split("_")
    if len(parts) < 3 or not token.startswith(TOKEN_PREFIX):
        return None, None
    prefix = parts[1]
    credential = (
        DeviceCredential.objects.select_related("device__asset")
        .filter(prefix=prefix, device__is_active=True)
        .first()
    )
    if credential is None or not hmac.compare_digest(credential.token_hash, token_hash):
        return None, None
    if not credential.is_valid_at(timezone.now()):
        return None, None
    device = credential.device
    metrics = dict(device.asset.model.metrics.values_list("code", "kind"))
    identity = DeviceIdentity(
        device_id=str(device.pk),
        customer_id=str(device.customer_id),
        asset_id=str(device.asset_id),
        rate_limit_per_minute=device.rate_limit_per_minute or settings.INGEST_DEVICE_RATE_PER_MINUTE,
        metrics={code: str(kind) for code, kind in metrics.items()},
    )
    return identity, credential.expires_at


# `lookup` in one statement, for the lean ingest path's own psycopg pool (PostgreSQL).
LOOKUP_SQL = """
SELECT c.token_hash, c.revoked_at, c.expires_at, d.id, d.customer_id, d.asset_id, d.rate_limit_per_minute,
       coalesce((SELECT json_agg(json_build_array(m.code, m.kind)) FROM fleet_metricdefinition m
                 WHERE m.asset_model_id = a.model_id), '[]')
FROM fleet_devicecredential c
JOIN fleet_device d ON d.id = c.device_id
JOIN fleet_asset a ON a.id = d.asset_id
WHERE c.prefix = %s AND d.is_active
"""


async def lookup_async(
    token: str, token_hash: str, pool: Any
) -> tuple[DeviceIdentity | None, datetime | None]:
    """`lookup` through an async psycopg pool: the same rules, one round trip."""
    parts = token.split("_")
    if len(parts) < 3 or not token.startswith(TOKEN_PREFIX):
        return None, None
    async with pool.connection() as conn:
        row = await (await conn.execute(LOOKUP_SQL, [parts[1]])).fetchone()
    if row is None:
        return None, None
    stored_hash, revoked_at, expires_at, device_id, customer_id, asset_id, rate, metrics = row
    if not hmac.compare_digest(stored_hash, token_hash):
        return None, None
    if not credential_valid_at(revoked_at, expires_at, timezone.now()):
        return None, None
    if isinstance(metrics, str):
        metrics = json.loads(metrics)
    identity = DeviceIdentity(
        device_id=str(device_id),
        customer_id=str(customer_id),
        asset_id=str(asset_id),
        rate_limit_per_minute=rate or settings.INGEST_DEVICE_RATE_PER_MINUTE,
        metrics={str(code): str(kind) for code, kind in metrics},
    )
    return identity, expires_at


def _cached(key: str, now: float, generation: int | None) -> tuple[bool, DeviceIdentity | None]:
    """(True, identity) when the cache holds a live answer for this token hash."""
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] > now and hit[1] == generation:
        return True, hit[2]
    return False, None


def _remember(
    key: str, now: float, generation: int | None, identity: DeviceIdentity | None, expires_at: datetime | None
) -> None:
    ttl = (
        settings.DEVICE_AUTH_CACHE_MAX_SECONDS
        if generation is not None
        else settings.DEVICE_AUTH_CACHE_SECONDS
    )
    if expires_at is not None:
        ttl = min(ttl, max(0.0, (expires_at - timezone.now()).total_seconds()))
    with _cache_lock:
        if len(_cache) > 50_000:
            _cache.clear()
        _cache[key] = (now + ttl, generation, identity)


def authenticate_device(token: str) -> DeviceIdentity | None:
    """The device a token belongs to, or None. Cached per process by the token's hash.

    With Redis reachable an entry lives up to DEVICE_AUTH_CACHE_MAX_SECONDS (never past the
    credential's own expiry) and is dropped as soon as the auth generation changes; without
    Redis it lives DEVICE_AUTH_CACHE_SECONDS. Either way a revocation takes seconds.
    """
    key = hash_token(token)
    now = time.monotonic()
    generation = _current_generation()
    found, identity = _cached(key, now, generation)
    if found:
        return identity
    identity, expires_at = lookup(token, key)
    _remember(key, now, generation, identity, expires_at)
    return identity


async def authenticate_device_async(token: str, pool: Any) -> DeviceIdentity | None:
    """`authenticate_device` for the lean ASGI ingest path: the same cache and rules; a miss
    is looked up through `pool` (an async psycopg pool), never blocking the event loop."""
    key = hash_token(token)
    now = time.monotonic()
    generation = await _current_generation_async()
    found, identity = _cached(key, now, generation)
    if found:
        return identity
    identity, expires_at = await lookup_async(token, key, pool)
    _remember(key, now, generation, identity, expires_at)
    return identity
