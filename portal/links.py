"""Links in e-mails: absolute, on PORTAL_BASE_URL (a task has no request to take a host from).

`make run` sets PORTAL_BASE_URL from its HOST and PORT (bin/run); production sets it to the
public origin. Every e-mailed link is built here, so none points at another port or host.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse


def base_url() -> str:
    return str(settings.PORTAL_BASE_URL).rstrip("/")


def portal_url(name: str, *args: Any, **kwargs: Any) -> str:
    """The absolute URL of the page `name` (a URL pattern's name), for an e-mail."""
    return base_url() + reverse(name, args=args or None, kwargs=kwargs or None)
