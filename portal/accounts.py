"""Log in by e-mail (throttled by django-axes), password change and (re)set, with audit."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import forms as auth_forms
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.urls import reverse_lazy

from portal.forms import EmailAuthenticationForm
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
    from django.conf import settings
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
