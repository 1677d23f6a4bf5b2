"""The server-error answer (Django's handler500): JSON in the API's error shape under /api/,
our page elsewhere. docs/api.md, "Errors".

A script talking to /api/ reads `{"detail": …}` on every error (portal/api/exceptions.py
makes the 4xx ones); an unexpected error must not turn into an HTML page for it.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

API_PREFIX = "/api/"
SERVER_ERROR = {"detail": "The server failed on this request; it has been logged. Try again later."}


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return JsonResponse(SERVER_ERROR, status=500)
    from portal.views import error_500

    return error_500(request)
