from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from portal import formatting


class UserTimezoneMiddleware:
    """Show times in the user's zone (their own, else their customer's, else UTC) and figures
    in the user's locale (`portal.formatting`)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        locale = None
        if user is not None and user.is_authenticated:
            # A stored zone this tzdata no longer knows (US/Pacific-New since 2020b) reads as UTC.
            timezone.activate(formatting.zone(user.display_time_zone))
            locale = user.display_locale
        else:
            timezone.deactivate()
        try:
            with formatting.override(locale):
                return self.get_response(request)
        finally:
            timezone.deactivate()
