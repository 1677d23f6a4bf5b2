"""Device tokens: issue, rotate with overlap, revoke.

A token is `fpd_<prefix>_<secret>`: the 8-hex-character prefix is stored in clear for the
lookup, the whole token only as SHA-256. Authenticating a token is the ingest doors' work
(fleet.ingest.auth, with its per-process cache); every change here bumps that cache's
generation after commit, so a revoked or rotated token is refused everywhere within seconds.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from fleet.ingest.auth import TOKEN_PREFIX, bump_generation, hash_token
from fleet.models import Device, DeviceCredential
from portal.models import User
from portal.services import audit_record


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
    transaction.on_commit(bump_generation)
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
    transaction.on_commit(bump_generation)
    audit_record(actor=actor, action="device.revoked", target=device, data={"credentials": count})
    return count
