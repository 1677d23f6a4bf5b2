"""Log in by e-mail (throttled by django-axes), password change and (re)set, with audit.

The throttle's rules and the proxy trust are in docs/security.md ("Log-in throttling").
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from functools import cache
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import views as auth_views
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.urls import reverse_lazy
from django.utils import timezone

from portal.forms import EmailAuthenticationForm
from portal.links import base_url
from portal.services import audit_record


class LoginView(auth_views.LoginView):
    form_class = EmailAuthenticationForm
    template_name = "registration/login.html"
    redirect_authenticated_user = True


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "registration/password_change.html"
    success_url = reverse_lazy("password_change_done")

    def form_valid(self, form: auth_forms.PasswordChangeForm) -> HttpResponse:
        response = super().form_valid(form)
        audit_record(actor=form.user, action="user.password_changed", target=form.user)
        return response


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "registration/password_reset.html"
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"

    def form_valid(self, form: auth_forms.PasswordResetForm) -> HttpResponse:
        # The link on PORTAL_BASE_URL like every e-mailed link (portal.links), not on the
        # request's Host header.
        self.extra_email_context = {"base_url": base_url()}
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Both the invitation link and the forgotten-password link end here."""

    template_name = "registration/password_set.html"

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        audit_record(actor=form.user, action="user.password_set", target=form.user)
        return response


def lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """django-axes' answer to a locked-out login: JSON with Retry-After for the API, a page otherwise."""
    from django.http import JsonResponse
    from django.shortcuts import render

    retry_after = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    response: HttpResponse
    if request.path.startswith("/api/"):
        response = JsonResponse({"detail": "Too many failed attempts; try again later."}, status=429)
    else:
        response = render(request, "registration/locked_out.html", status=429)
    response["Retry-After"] = retry_after
    return response


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def _trusted_proxies(spec: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in spec)


def _parse_hop(text: str) -> str | None:
    """One address of X-Forwarded-For as a canonical IP, or None: "1.2.3.4", "1.2.3.4:5678",
    "2001:db8::1", "[2001:db8::1]:443" are addresses; anything else is not."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def client_address(remote_addr: str, forwarded_for: str, trusted: tuple[str, ...]) -> str:
    """The address of the client, for throttling: the nearest hop that is not a trusted proxy.

    Walks from the connecting peer (`remote_addr`) back through X-Forwarded-For, right to
    left, for as long as the hop is one of `trusted` (addresses or networks). A proxy appends
    the address it saw, so everything left of the first untrusted hop is the client's own
    claim and is never believed. With no trusted proxies (the default) the header is ignored.
    A hop that is not an address ends the walk at the proxy that passed it on.
    """
    networks = _trusted_proxies(trusted)
    # No address for the peer (a Unix socket): one bucket for all such peers, never a 500.
    current = _parse_hop(remote_addr) or "0.0.0.0"  # noqa: S104 - an address, not a bind
    hops = [hop for hop in forwarded_for.split(",") if hop.strip()]
    while hops and any(ipaddress.ip_address(current) in net for net in networks):
        previous = _parse_hop(hops.pop())
        if previous is None:
            break
        current = previous
    return current


def request_client_address(request: HttpRequest) -> str:
    """django-axes' AXES_CLIENT_IP_CALLABLE: `client_address` with settings.TRUSTED_PROXIES."""
    return client_address(
        request.META.get("REMOTE_ADDR", ""),
        request.META.get("HTTP_X_FORWARDED_FOR", ""),
        tuple(settings.TRUSTED_PROXIES),
    )


class LoginThrottle(AxesDatabaseHandler):
    """django-axes' database handler plus a limit per address across accounts.

    Axes counts failures per e-mail and address (AXES_FAILURE_LIMIT). An address that fails
    LOGIN_ADDRESS_FAILURE_LIMIT times within AXES_COOLOFF_TIME, over any number of e-mails
    (one address trying a few passwords on many accounts), is locked out as a whole until
    its failures are older than the cool-off: its count is reported as at least the limit.
    """

    def get_failures(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        failures: int = super().get_failures(request, credentials)
        address = getattr(request, "axes_ip_address", None) or request_client_address(request)
        since = timezone.now() - (get_cool_off(request) or timedelta(0))
        from_address = (
            AccessAttempt.objects.filter(ip_address=address, attempt_time__gte=since).aggregate(
                total=Sum("failures_since_start")
            )["total"]
            or 0
        )
        if from_address >= settings.LOGIN_ADDRESS_FAILURE_LIMIT:
            return max(failures, int(get_failure_limit(request, credentials)))
        return failures
