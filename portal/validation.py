"""Small helpers every app's views share: id checks and readable validation errors."""

from __future__ import annotations

import uuid

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
