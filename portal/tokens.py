"""User API tokens: issue, authenticate (DRF), revoke."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from portal.models import ApiToken, User
from portal.services import audit_record

PREFIX = "fpu_"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def api_token_issue(*, user: User, name: str = "") -> str:
    """A new token for `user`; returned once, stored only as a hash."""
    prefix = secrets.token_hex(4)
    token = f"{PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    record = ApiToken.objects.create(
        user=user, customer_id=user.customer_id, name=name, prefix=prefix, token_hash=_hash(token)
    )
    audit_record(actor=user, action="api_token.created", target=record, customer=user.customer)
    return token


@transaction.atomic
def api_token_revoke(*, token: ApiToken, actor: User) -> ApiToken:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(actor=actor, action="api_token.revoked", target=token, customer=token.customer)
    return token


class TokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Token fpu_…`. Unknown, revoked or inactive → 401 with one message."""

    keyword = "Token"

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        header = authentication.get_authorization_header(request).decode(errors="replace")
        scheme, _, token = header.partition(" ")
        if scheme != self.keyword:
            return None
        token = token.strip()
        parts = token.split("_")
        record = None
        if token.startswith(PREFIX) and len(parts) >= 3:
            record = ApiToken.objects.select_related("user__customer").filter(prefix=parts[1]).first()
        if (
            record is None
            or not hmac.compare_digest(record.token_hash, _hash(token))
            or record.revoked_at is not None
            or not record.user.is_active
            or (record.user.customer is not None and not record.user.customer.is_active)
        ):
            raise exceptions.AuthenticationFailed("Invalid or revoked token.")
        now = timezone.now()
        if record.last_used_at is None or (now - record.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=record.pk).update(last_used_at=now)
        return record.user, record

    def authenticate_header(self, request: Any) -> str:
        return self.keyword
