"""`POST /api/v1/ingest/heartbeats`: the device ingest contract of DESIGN.md, exactly.

A plain Django view rather than DRF: this is the hot path, and hand-written validation of
a fixed shape is several times faster than a serializer per item. Every answer is JSON;
no input produces a 500. The order of checks: 401 (token), 415 (content type), 413 (size),
429 (device rate), 503 (backlog), then 400 (body) — so a stranger learns nothing about
limits, and a device learns about its own only.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from fleet import pipeline
from fleet.credentials import DeviceIdentity, authenticate_device
from fleet.models import IngestInbox

log = logging.getLogger(__name__)

STATUSES = frozenset({"ok", "warning", "fault"})
REQUIRED = ("seq", "ts", "status", "metrics")
ALLOWED = frozenset({*REQUIRED, "fault_code"})
MAX_SEQ = 2**63 - 1
MAX_FAULT_CODE = 64


def _error(status: int, detail: str, **extra: Any) -> JsonResponse:
    response = JsonResponse({"detail": detail, **extra}, status=status)
    if "retry_after" in extra:
        response["Retry-After"] = str(extra["retry_after"])
    return response


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite(number: float) -> bool:
    try:
        return math.isfinite(number) and abs(number) < 1e15
    except OverflowError:  # an integer too large for a float
        return False


def _parse_ts(value: Any, now: datetime, oldest: datetime, newest: datetime) -> tuple[str | None, str | None]:
    """(UTC ISO string, None) or (None, error)."""
    if not isinstance(value, str) or len(value) > 40:
        return None, "must be an RFC 3339 timestamp string"
    text = value.strip()
    if len(text) < 20 or text[10] not in "Tt ":
        return None, "must be an RFC 3339 timestamp with date and time"
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None, "must be an RFC 3339 timestamp"
    if moment.tzinfo is None:
        return None, "must carry a UTC offset (Z or ±hh:mm)"
    if moment > newest:
        return None, "is more than 5 minutes in the future"
    if moment < oldest:
        return None, f"is older than {settings.INGEST_MAX_AGE_DAYS} days"
    return moment.astimezone(UTC).isoformat(), None


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
        missing = [key for key in REQUIRED if key not in item]
        for key in missing:
            err(index, key, "is required")
        for key in item.keys() - ALLOWED:
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
        values = item["metrics"]
        if not isinstance(values, dict):
            err(index, "metrics", "must be an object of metric code to number")
            continue
        for code, number in values.items():
            if code not in metrics:
                err(index, f"metrics.{str(code)[:40]}", "is not a metric of this asset's model")
            elif type(number) not in (int, float) or not _finite(number):
                err(index, f"metrics.{code}", "must be a finite number")
            elif metrics[code] == "counter" and number < 0:
                err(index, f"metrics.{code}", "a counter cannot be negative")
        if len(errors) > 100:
            break
        clean.append(
            {"seq": seq, "ts": ts, "status": status, "fault_code": fault_code or "", "metrics": values}
        )
    return clean, errors


@csrf_exempt
def heartbeats(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return _error(405, "Use POST.")
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    identity: DeviceIdentity | None = (
        authenticate_device(token.strip()) if scheme == "Device" and token.strip() else None
    )
    if identity is None:
        response = _error(401, "Unknown or revoked device token.")
        response["WWW-Authenticate"] = "Device"
        return response
    content_type = request.content_type or ""
    if content_type != "application/json":
        return _error(415, "Send Content-Type: application/json.")
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        length = 0
    if length > settings.INGEST_MAX_BODY_BYTES:
        return _error(413, f"The body is larger than {settings.INGEST_MAX_BODY_BYTES} bytes.")
    raw = request.read(settings.INGEST_MAX_BODY_BYTES + 1)
    if len(raw) > settings.INGEST_MAX_BODY_BYTES:
        return _error(413, f"The body is larger than {settings.INGEST_MAX_BODY_BYTES} bytes.")
    retry_after = pipeline.rate_limit_hit(identity.device_id, identity.rate_limit_per_minute)
    if retry_after:
        return _error(429, "This device sends faster than its rate.", retry_after=retry_after)
    if pipeline.backlog_exceeded():
        return _error(503, "The pipeline is backlogged; retry later.", retry_after=5)
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return _error(400, "The body is not valid JSON.", errors=[])
    items, errors = validate_items(body, identity.metrics)
    if errors:
        return _error(400, "Nothing was accepted from this body.", errors=errors)
    # One autocommitted INSERT: durable when it returns, one round trip (an atomic block would
    # add BEGIN and COMMIT round trips for nothing).
    IngestInbox.objects.create(device_id=identity.device_id, count=len(items), items=items)
    pipeline.nudge()
    return JsonResponse({"accepted": len(items)}, status=202)
