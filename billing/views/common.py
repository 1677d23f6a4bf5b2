"""What the billing pages share."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils import timezone

from billing import metering
from portal.models import User


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _last_month(user: User) -> str:
    zone = user.customer.time_zone if user.customer else "UTC"
    return metering.period_containing(timezone.now(), zone).previous().label
