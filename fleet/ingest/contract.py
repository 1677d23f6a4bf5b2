"""The device ingest contract (docs/ingest.md, "The device contract"): the checks of a body
and the answers both doors give, byte for byte.

Hand-written validation rather than DRF: this is the hot path, and checking a fixed shape by
hand is several times faster than a serializer per item. Every answer is JSON; no input
produces a 500. The order of checks (the doors run them, view.py and endpoint.py): 401
(token), 415 (content type), 413 (size), 429 (device rate), 503 (backlog), then 400 (body) —
so a stranger learns nothing about limits, and a device learns about its own only.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.utils import timezone

PATH = "/api/v1/ingest/heartbeats"
STATUSES = frozenset({"ok", "warning", "fault"})
REQUIRED = ("seq", "ts", "status", "metrics")
ALLOWED = frozenset({*REQUIRED, "fault_code"})
REQUIRED_KEYS = frozenset(REQUIRED)
MAX_SEQ = 2**63 - 1
MAX_FAULT_CODE = 64


# (status, JSON payload, extra headers): what both ways in answer, byte for byte.
Answer = tuple[int, dict[str, Any], list[tuple[str, str]]]


def answer(status: int, detail: str, **extra: Any) -> Answer:
    headers = [("Retry-After", str(extra["retry_after"]))] if "retry_after" in extra else []
    return status, {"detail": detail, **extra}, headers


def unauthorized() -> Answer:
    return 401, {"detail": "Unknown or revoked device token."}, [("WWW-Authenticate", "Device")]


def too_large() -> Answer:
    return answer(413, f"The body is larger than {settings.INGEST_MAX_BODY_BYTES} bytes.")


def method_not_allowed() -> Answer:
    return answer(405, "Use POST.")


def over_rate(retry_after: int) -> Answer:
    return answer(429, "This device sends faster than its rate.", retry_after=retry_after)


def backlogged() -> Answer:
    return answer(503, "The pipeline is backlogged; retry later.", retry_after=5)


def database_unavailable() -> Answer:
    return answer(503, "The database is unavailable; retry later.", retry_after=5)


def accepted(count: int) -> Answer:
    return 202, {"accepted": count}, []


def check_headers(content_type: str, content_length: str | None) -> Answer | None:
    """415 and the announced size's 413, before any of the body is read."""
    if content_type != "application/json":
        return answer(415, "Send Content-Type: application/json.")
    try:
        length = int(content_length or 0)
    except ValueError:
        length = 0
    if length > settings.INGEST_MAX_BODY_BYTES:
        return too_large()
    return None


def parse_and_validate(raw: bytes, metrics: dict[str, str]) -> tuple[list[dict[str, Any]], Answer | None]:
    """The body's normalized items, or the 400 to answer.

    orjson first (several times faster); whatever it refuses — NaN, Infinity, unpaired
    surrogates, integers past 64 bits, deep nesting — goes to the json module as before, so
    the outcome is the json module's.
    """
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            body = json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            return [], answer(400, "The body is not valid JSON.", errors=[])
    items, errors = validate_items(body, metrics)
    if errors:
        return [], answer(400, "Nothing was accepted from this body.", errors=errors)
    return items, None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _read_ts(text: str) -> tuple[datetime, str] | str:
    """(moment, UTC ISO string) of a timestamp string, or what is wrong with it."""
    text = text.strip()
    if len(text) < 20 or text[10] not in "Tt ":
        return "must be an RFC 3339 timestamp with date and time"
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return "must be an RFC 3339 timestamp"
    if moment.tzinfo is None:
        return "must carry a UTC offset (Z or ±hh:mm)"
    try:
        return moment, moment.astimezone(UTC).isoformat()
    except OverflowError:  # 0001-01-01T00:00+01:00 is in year 0 in UTC, past Python's range
        return "is out of range"


# Timestamp text -> what _read_ts made of it. Devices send the same few timestamps a second
# (a batch of 100 covers 100 seconds; a fleet reports on the same clock).
_ts_seen: dict[str, tuple[datetime, str] | str] = {}


def _parse_ts(value: Any, now: datetime, oldest: datetime, newest: datetime) -> tuple[str | None, str | None]:
    """(UTC ISO string, None) or (None, error)."""
    if not isinstance(value, str) or len(value) > 40:
        return None, "must be an RFC 3339 timestamp string"
    read = _ts_seen.get(value)
    if read is None:
        read = _read_ts(value)
        if len(_ts_seen) >= 4096:
            _ts_seen.clear()
        _ts_seen[value] = read
    if isinstance(read, str):
        return None, read
    moment, normalized = read
    if moment > newest:
        return None, "is more than 5 minutes in the future"
    if moment < oldest:
        return None, f"is older than {settings.INGEST_MAX_AGE_DAYS} days"
    return normalized, None


def _storable(text: str) -> bool:
    """PostgreSQL stores neither NUL characters nor unpaired surrogates (a 500, else)."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def validate_items(body: Any, metrics: dict[str, str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Check a parsed body against the contract. Returns (normalized items, errors)."""
    items = body if isinstance(body, list) else [body]
    if isinstance(body, list) and not body:
        return [], [{"index": None, "field": None, "message": "an array needs 1 to 1000 heartbeats"}]
    if len(items) > settings.INGEST_MAX_ITEMS:
        return [], [
            {"index": None, "field": None, "message": f"at most {settings.INGEST_MAX_ITEMS} heartbeats"}
        ]
    now = timezone.now()
    newest = now + timedelta(seconds=settings.INGEST_MAX_FUTURE_SECONDS)
    oldest = now - timedelta(days=settings.INGEST_MAX_AGE_DAYS)
    clean: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []

    def err(index: int, field: str | None, message: str) -> None:
        errors.append({"index": index, "field": field, "message": message})

    for index, item in enumerate(items):
        if not isinstance(item, dict):
            err(index, None, "must be a JSON object")
            continue
        keys = item.keys()
        if not (keys <= ALLOWED and keys >= REQUIRED_KEYS):  # set comparisons of the keys view: no loop
            missing = [key for key in REQUIRED if key not in item]
            for key in missing:
                err(index, key, "is required")
            for key in keys - ALLOWED:
                err(index, str(key)[:40], "is not a heartbeat field")
            if missing:
                continue
        seq = item["seq"]
        if type(seq) is not int or seq < 0 or seq > MAX_SEQ:
            err(index, "seq", "must be an integer ≥ 0")
        ts, ts_error = _parse_ts(item["ts"], now, oldest, newest)
        if ts_error:
            err(index, "ts", ts_error)
        status = item["status"]
        if not isinstance(status, str) or status not in STATUSES:
            err(index, "status", "must be ok, warning or fault")
        fault_code = item.get("fault_code")
        if fault_code is not None and (not isinstance(fault_code, str) or len(fault_code) > MAX_FAULT_CODE):
            err(index, "fault_code", f"must be null or a string of at most {MAX_FAULT_CODE} characters")
        elif fault_code and not _storable(fault_code):
            err(index, "fault_code", "must not contain NUL characters or unpaired surrogates")
        values = item["metrics"]
        if not isinstance(values, dict):
            err(index, "metrics", "must be an object of metric code to number")
            continue
        for code, number in values.items():
            kind = metrics.get(code)
            if kind is None:
                err(index, f"metrics.{str(code)[:40]}", "is not a metric of this asset's model")
            elif (type(number) is not float and type(number) is not int) or not -1e15 < number < 1e15:
                # (finite and below 1e15 in size: NaN and ±inf fail the comparison; an integer
                # too large for a float compares exactly)
                err(index, f"metrics.{code}", "must be a finite number")
            elif number < 0 and kind == "counter":
                err(index, f"metrics.{code}", "a counter cannot be negative")
        if len(errors) > 100:
            break
        clean.append(
            {"seq": seq, "ts": ts, "status": status, "fault_code": fault_code or "", "metrics": values}
        )
    return clean, errors
