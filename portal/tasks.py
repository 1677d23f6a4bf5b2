"""Celery tasks of the core: ids in, one service or mail out; idempotent."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from portal import outbox, services
from portal.links import portal_url
from portal.models import User


@shared_task(name="portal.user_invite_send")
def user_invite_send(*, user_id: str) -> bool:
    """E-mail an invited user the link to set their password. Skips users who already set one."""
    user = User.objects.select_related("customer").filter(pk=user_id, is_active=True).first()
    if user is None or user.has_usable_password():
        return False
    link = portal_url(
        "password_reset_confirm",
        uidb64=urlsafe_base64_encode(force_bytes(user.pk)),
        token=default_token_generator.make_token(user),
    )
    context = {"user": user, "link": link, "customer": user.customer}
    send_mail(
        subject="You are invited to Fleetport",
        message=render_to_string("portal/email/invite.txt", context),
        from_email=None,
        recipient_list=[user.email],
    )
    return True


@shared_task(name="portal.audit_prune")
def audit_prune() -> int:
    return services.audit_prune(older_than_days=settings.AUDIT_RETENTION_DAYS)


@shared_task(name="portal.outbox_relay", ignore_result=True)
def outbox_relay() -> int:
    """Beat, every 5 s: publish the outbox rows no on-commit attempt published."""
    return outbox.relay()
