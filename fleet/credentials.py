"""Device tokens: issue, rotate with overlap, revoke, and authenticate fast.

A token is `fpd_<prefix>_<secret>`: the 8-hex-character prefix is stored in clear for the
lookup, the whole token only as SHA-256. Authentication results are cached in each process
for `DEVICE_AUTH_CACHE_SECONDS` (default 5), which bounds how long a revoked token can still
be accepted anywhere: "within seconds".
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from fleet.models import Device, DeviceCredential, MetricKind
from portal.models import User
from portal.services import audit_record

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


def _new_token() -> tuple[str, str]:
    prefix = secrets.token_hex(4)
    return f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}", prefix


@transaction.atomic
def device_token_issue(*, device: Device, actor: User | None, overlap: timedelta | None = None) -> str:
    """Create a new token for `device` and return it (the only time it is seen).

    Tokens issued before stay valid for `overlap` (default DEVICE_TOKEN_ROTATION_OVERLAP),
    so a device can switch over without losing heartbeats; zero ends them at once.
    """
    now = timezone.now()
    overlap = (
        overlap if overlap is not None else timedelta(seconds=settings.DEVICE_TOKEN_ROTATION_OVERLAP_SECONDS)
    )
    ends = now + overlap
    old = DeviceCredential.objects.for_customer(device.customer_id).filter(
        device=device, revoked_at__isnull=True
    )
    old.filter(expires_at__isnull=True).update(expires_at=ends)
    old.filter(expires_at__gt=ends).update(expires_at=ends)
    token, prefix = _new_token()
    credential = DeviceCredential.objects.create(
        customer_id=device.customer_id, device=device, prefix=prefix, token_hash=hash_token(token)
    )
    audit_record(
        actor=actor,
        action="device.token_issued",
        target=device,
        data={"prefix": credential.prefix, "overlap_seconds": int(overlap.total_seconds())},
    )
    return token


@transaction.atomic
def device_revoke(*, device: Device, actor: User | None) -> int:
    """Revoke every token of `device`; refused everywhere within DEVICE_AUTH_CACHE_SECONDS."""
    count = (
        DeviceCredential.objects.for_customer(device.customer_id)
        .filter(device=device, revoked_at__isnull=True)
        .update(revoked_at=timezone.now())
    )
    audit_record(actor=actor, action="device.revoked", target=device, data={"credentials": count})
    return count


_cache: dict[str, tuple[float, DeviceIdentity | None]] = {}
_cache_lock = threading.Lock()


def _lookup(token: str) -> DeviceIdentity | None:
    parts = token.split("_")
    if len(parts) < 3 or not token.startswith(TOKEN_PREFIX):
        return None
    prefix = parts[1]
    credential = (
        DeviceCredential.objects.select_related("device__asset")
        .filter(prefix=prefix, device__is_active=True)
        .first()
    )
    if credential is None or not hmac.compare_digest(credential.token_hash, hash_token(token)):
        return None
    if not credential.is_valid_at(timezone.now()):
        return None
    device = credential.device
    metrics = dict(device.asset.model.metrics.values_list("code", "kind"))
    return DeviceIdentity(
        device_id=str(device.pk),
        customer_id=str(device.customer_id),
        asset_id=str(device.asset_id),
        rate_limit_per_minute=device.rate_limit_per_minute or settings.INGEST_DEVICE_RATE_PER_MINUTE,
        metrics={code: str(kind) for code, kind in metrics.items()},
    )


def authenticate_device(token: str) -> DeviceIdentity | None:
    """The device a token belongs to, or None. Cached briefly per process (by hash, not token)."""
    key = hash_token(token)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    identity = _lookup(token)
    with _cache_lock:
        if len(_cache) > 50_000:
            _cache.clear()
        _cache[key] = (now + settings.DEVICE_AUTH_CACHE_SECONDS, identity)
    return identity


def clear_auth_cache() -> None:
    with _cache_lock:
        _cache.clear()


COUNTER = MetricKind.COUNTER.value
