"""Small helpers every app's views share: id checks and readable validation errors."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from django.core.exceptions import ValidationError


def is_uuid(value: str) -> bool:
    """True when `value` is a UUID (ids in query strings and forms are checked before lookups)."""
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def error_text(exc: ValidationError) -> str:
    """A ValidationError as one sentence for a page's error message."""
    if hasattr(exc, "error_dict"):
        return " ".join(str(m) for messages in exc.message_dict.values() for m in messages)
    return " ".join(exc.messages)


# The dates a client may send: wide enough for any machine's life and any billing month, narrow
# enough that a day's or a month's arithmetic around them (a default range before `to`, the local
# midnight of a date, the month after a period) stays inside Python's years 1–9999 in every time
# zone. Outside them a value is a 400 on its field, never an OverflowError (docs/api.md).
FIRST_YEAR = 1970
LAST_YEAR = 2999
_EARLIEST = datetime(FIRST_YEAR, 1, 1, tzinfo=UTC)
_LATEST = datetime(LAST_YEAR + 1, 1, 1, tzinfo=UTC)


def validate_moment(value: datetime) -> None:
    """A datetime from a request: between 1970-01-01 and 2999-12-31 (UTC)."""
    if not _EARLIEST <= value < _LATEST:
        raise ValidationError(f"Enter a date and time from {FIRST_YEAR} to {LAST_YEAR}.", code="out_of_range")


def validate_day(value: date) -> None:
    """A date from a request: between 1970-01-01 and 2999-12-31."""
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValidationError(f"Enter a date from {FIRST_YEAR} to {LAST_YEAR}.", code="out_of_range")


def add_form_errors(form: Any, exc: ValidationError) -> None:
    """A service's ValidationError on `form`: each field's errors next to that field, the rest
    (and errors of fields the form does not show) above the form."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, errors in exc.error_dict.items():
        form.add_error(field if field in form.fields else None, errors)
