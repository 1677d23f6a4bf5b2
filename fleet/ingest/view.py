"""The Django door of `POST /api/v1/ingest/heartbeats` (docs/ingest.md).

It serves the test client, `INGEST_LEAN_PATH=0`, and whatever the lean ASGI endpoint hands
on to Django (endpoint.py says when). The checks and their order are the contract's
(contract.py); the lean endpoint runs the same ones with the same answers.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from fleet.ingest import admission, contract
from fleet.ingest.auth import DeviceIdentity, authenticate_device
from fleet.models import IngestInbox
from portal import dbpool

log = logging.getLogger(__name__)


def _response(answer: contract.Answer) -> JsonResponse:
    status, payload, headers = answer
    response = JsonResponse(payload, status=status)
    for name, value in headers:
        response[name] = value
    return response


@csrf_exempt
def heartbeats(request: HttpRequest) -> JsonResponse:
    try:
        return _heartbeats(request)
    except (OperationalError, InterfaceError):
        # PostgreSQL away (restarting): retry later, as the lean door answers (docs/ingest.md).
        log.warning("ingest: the database is unavailable", exc_info=True)
        return _response(contract.database_unavailable())


def _heartbeats(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        return _response(contract.method_not_allowed())
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme != "Device" or not token.strip():
        return _response(contract.unauthorized())
    # Everything from here may need PostgreSQL (the device lookup, the backlog, the INSERT).
    # While it is away, answer within the lean door's bound, not after Django's pool timeout
    # of 10 s (docs/ingest.md, "Outages").
    if not dbpool.connection_ready(within=settings.INGEST_DATABASE_POOL_TIMEOUT):
        log.warning("ingest: no database connection within %.1f s", settings.INGEST_DATABASE_POOL_TIMEOUT)
        return _response(contract.database_unavailable())
    identity: DeviceIdentity | None = authenticate_device(token.strip())
    if identity is None:
        return _response(contract.unauthorized())
    early = contract.check_headers(request.content_type or "", request.headers.get("Content-Length"))
    if early is not None:
        return _response(early)
    raw = request.read(settings.INGEST_MAX_BODY_BYTES + 1)
    if len(raw) > settings.INGEST_MAX_BODY_BYTES:
        return _response(contract.too_large())
    retry_after = admission.rate_limit_hit(identity.device_id, identity.rate_limit_per_minute)
    if retry_after:
        return _response(contract.over_rate(retry_after))
    if admission.backlog_exceeded():
        return _response(contract.backlogged())
    items, bad = contract.parse_and_validate(raw, identity.metrics)
    if bad is not None:
        return _response(bad)
    # One autocommitted INSERT: durable when it returns, one round trip (an atomic block would
    # add BEGIN and COMMIT round trips for nothing).
    IngestInbox.objects.create(device_id=identity.device_id, count=len(items), items=items)
    admission.nudge()
    return _response(contract.accepted(len(items)))
