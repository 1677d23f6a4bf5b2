from __future__ import annotations

import zoneinfo
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from portal import formatting


def _zone(name: str) -> zoneinfo.ZoneInfo:
    """The zone called `name`; UTC for a name this tzdata does not know (stored when it was
    valid, removed since, as US/Pacific-New in 2020b), which is no reason for a 500."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


class UserTimezoneMiddleware:
    """Show times in the user's zone (their own, else their customer's, else UTC) and figures
    in the user's locale (`portal.formatting`)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        locale = None
        if user is not None and user.is_authenticated:
            timezone.activate(_zone(user.display_time_zone))
            locale = user.display_locale
        else:
            timezone.deactivate()
        try:
            with formatting.override(locale):
                return self.get_response(request)
        finally:
            timezone.deactivate()
