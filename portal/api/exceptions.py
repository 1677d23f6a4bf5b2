"""API errors in one shape (docs/api.md#conventions), whatever raised them:

    {"detail": "site: Unknown site.", "errors": [{"field": "site", "message": "Unknown site."}]}

Every error answer is an object with `detail`, one readable sentence. A 400 also lists `errors`,
one entry per message: `field` is the input's path (`site`, `metrics.0.code`, a query
parameter) or `null` for the request as a whole. The device ingest endpoint answers in the same
shape, its entries with the heartbeat's `index` besides (docs/api.md#device-ingest).

Django's ValidationError and PermissionDenied from services and selectors become 400 and 403
here (never a 500 for a user's mistake).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

_WHOLE = {NON_FIELD_ERRORS, api_settings.NON_FIELD_ERRORS_KEY}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is not None:
        response.data = error_body(response.data, validation=response.status_code == 400)
    return response


def error_body(data: Any, *, validation: bool) -> dict[str, Any]:
    """DRF's error data (a string, list or nested dict of messages) in our one shape."""
    if isinstance(data, dict) and set(data) == {"detail"} and isinstance(data["detail"], str):
        if not validation:
            return {"detail": str(data["detail"])}
        data = [data["detail"]]  # a 400 about the request as a whole (e.g. a body that is no JSON)
    found = list(_messages(data, []))
    detail = " ".join(f"{field}: {message}" if field else message for field, message in found)
    return {
        "detail": detail or "Invalid input.",
        "errors": [{"field": field, "message": message} for field, message in found],
    }


def _messages(detail: Any, path: list[str]) -> Iterator[tuple[str | None, str]]:
    """(dotted field path or None, message) for each message of a nested DRF error detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            yield from _messages(value, path if key in _WHOLE else [*path, str(key)])
    elif isinstance(detail, list | tuple):
        for index, item in enumerate(detail):
            if isinstance(item, dict | list | tuple):  # one entry per item of a list field
                yield from _messages(item, [*path, str(index)])
            else:
                yield (".".join(path) or None), str(item)
    else:
        yield (".".join(path) or None), str(detail)
