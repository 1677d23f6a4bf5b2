"""User API tokens: issue, authenticate (DRF), revoke; a new password revokes them all."""

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


@transaction.atomic
def api_tokens_revoke_for_password_change(*, user: User) -> int:
    """Revoke every live token of `user` because their password changed; returns how many.

    A token is a credential derived from the password (obtained with it), so it must not
    outlive it, just as the other sessions do not. Revoked tokens stay listed, with
    `revoked_at`, and each gets an `api_token.revoked` audit entry saying why. Idempotent.
    """
    now = timezone.now()
    revoked = list(ApiToken.objects.select_for_update().filter(user=user, revoked_at__isnull=True))
    for token in revoked:
        token.revoked_at = now
        token.save(update_fields=["revoked_at"])
        audit_record(
            actor=None,
            action="api_token.revoked",
            target=token,
            customer=token.customer,
            data={"reason": "password_changed"},
        )
    return len(revoked)


class PasswordChangeRevokesTokens:
    """Django's hook for "a password was set" (AUTH_PASSWORD_VALIDATORS: `password_changed`
    runs after every `set_password()` + `save()`: the password change and reset forms, the
    admin's password form, `manage.py changepassword`, any service). It validates nothing.

    Not a signal of ours nor a stamp derived from the password hash: a hash upgrade at login
    (Django raises its PBKDF2 iterations each release) rehashes without a change of password,
    and Django does not call this hook for it, so tokens survive upgrades but not changes.
    """

    def validate(self, password: str, user: User | None = None) -> None:
        return None

    def password_changed(self, password: str, user: User | None = None) -> None:
        if user is not None and user.pk is not None:
            api_tokens_revoke_for_password_change(user=user)

    def get_help_text(self) -> str:
        return "Setting a new password revokes your API tokens."


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
