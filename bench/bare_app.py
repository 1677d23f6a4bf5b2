"""The ceiling for the ingest endpoint: the least a Django view under uvicorn can do.

    uvicorn bare_app:application --app-dir bench --workers 2 --no-access-log

A plain Django view answering `{"ok": true}` to any request, with no middleware, no apps and
no database: what Django + ASGI + uvicorn cost per request on this machine. bench/ingest.py
drives it with the same wrk script and request bodies as the ingest endpoint.
"""

from __future__ import annotations

from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-bare-app-not-a-secret-0123456789-abcdefghijklmnopqrstuvwxyz",  # noqa: S106
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    DATABASES={},
    USE_TZ=True,
    LOGGING_CONFIG=None,
)

from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import re_path  # noqa: E402


def ok(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


urlpatterns = [re_path(r"", ok)]

application = get_asgi_application()
