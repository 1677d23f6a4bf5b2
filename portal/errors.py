"""The server-error and bad-request answers (Django's handler500 and handler400): JSON in the
API's error shape under /api/, Django's page elsewhere. docs/api.md, "Errors".

handler400 answers what Django refuses before a view runs: a request with more form fields
than DATA_UPLOAD_MAX_NUMBER_FIELDS, an oversized body, a malformed multipart body.

A script talking to /api/ reads `{"detail": …}` on every error (portal/api/exceptions.py
makes the 4xx ones); an unexpected error must not turn into an HTML page for it.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

API_PREFIX = "/api/"
SERVER_ERROR = {"detail": "The server failed on this request; it has been logged. Try again later."}
_UNREADABLE = "The request could not be read (too many fields, too large, or malformed)."
BAD_REQUEST = {"detail": _UNREADABLE, "errors": [{"field": None, "message": _UNREADABLE}]}


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return JsonResponse(SERVER_ERROR, status=500)
    from portal.views import error_500

    return error_500(request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return JsonResponse(BAD_REQUEST, status=400)
    from django.views.defaults import bad_request as django_bad_request

    return django_bad_request(request, exception)
