"""Filters of the console log (settings.LOGGING)."""

from __future__ import annotations

import logging


class ClientErrorsOnOneLine(logging.Filter):
    """A 4xx answer logs one line, without a traceback.

    Django logs a refused request (PermissionDenied → 403, and the 400s of bad requests) at
    WARNING with the exception attached, so every 403 printed a traceback on the console:
    noise that hides real errors. The request's path and status stay in the line; a 5xx keeps
    its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if isinstance(status, int) and 400 <= status < 500:
            record.exc_info = None
            record.exc_text = None
        return True
