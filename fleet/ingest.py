"""`POST /api/v1/ingest/heartbeats`: the device ingest contract of DESIGN.md, exactly.

Two ways in, one behaviour:

- `IngestEndpoint`, the lean path: an ASGI app in front of Django (portal/asgi.py) that
  answers this one path itself on the event loop — no Django request, no middleware, no
  thread hop; Redis through redis.asyncio; the inbox row INSERTed through its own psycopg
  pool, the rows of concurrent requests in one statement and one commit, each request
  answered 202 only after that commit. It takes PostgreSQL deployments' requests with a
  valid Host that need no HTTPS redirect; anything else goes on to Django.
- `heartbeats`, the Django view: SQLite (`make run`), the test client, and whatever the lean
  path hands on.

Hand-written validation rather than DRF: this is the hot path, and checking a fixed shape by
hand is several times faster than a serializer per item. Every answer is JSON; no input
produces a 500. The order of checks: 401 (token), 415 (content type), 413 (size), 429 (device
rate), 503 (backlog), then 400 (body) — so a stranger learns nothing about limits, and a
device learns about its own only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, JsonResponse
from django.http.request import split_domain_port, validate_host
from django.utils import timezone
from django.utils.http import parse_header_parameters
from django.views.decorators.csrf import csrf_exempt
from psycopg_pool import PoolTimeout

from fleet import pipeline
from fleet.credentials import DeviceIdentity, authenticate_device, authenticate_device_async
from fleet.models import IngestInbox

log = logging.getLogger(__name__)

STATUSES = frozenset({"ok", "warning", "fault"})
REQUIRED = ("seq", "ts", "status", "metrics")
ALLOWED = frozenset({*REQUIRED, "fault_code"})
MAX_SEQ = 2**63 - 1
MAX_FAULT_CODE = 64


PATH = "/api/v1/ingest/heartbeats"

# (status, JSON payload, extra headers): what both ways in answer, byte for byte.
Answer = tuple[int, dict[str, Any], list[tuple[str, str]]]


def _answer(status: int, detail: str, **extra: Any) -> Answer:
    headers = [("Retry-After", str(extra["retry_after"]))] if "retry_after" in extra else []
    return status, {"detail": detail, **extra}, headers


def _unauthorized() -> Answer:
    return 401, {"detail": "Unknown or revoked device token."}, [("WWW-Authenticate", "Device")]


def _too_large() -> Answer:
    return _answer(413, f"The body is larger than {settings.INGEST_MAX_BODY_BYTES} bytes.")


def _error(status: int, detail: str, **extra: Any) -> JsonResponse:
    return _response(_answer(status, detail, **extra))


def _response(answer: Answer) -> JsonResponse:
    status, payload, headers = answer
    response = JsonResponse(payload, status=status)
    for name, value in headers:
        response[name] = value
    return response


def _check_headers(content_type: str, content_length: str | None) -> Answer | None:
    """415 and the announced size's 413, before any of the body is read."""
    if content_type != "application/json":
        return _answer(415, "Send Content-Type: application/json.")
    try:
        length = int(content_length or 0)
    except ValueError:
        length = 0
    if length > settings.INGEST_MAX_BODY_BYTES:
        return _too_large()
    return None


def _parse_and_validate(raw: bytes, metrics: dict[str, str]) -> tuple[list[dict[str, Any]], Answer | None]:
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
            return [], _answer(400, "The body is not valid JSON.", errors=[])
    items, errors = validate_items(body, metrics)
    if errors:
        return [], _answer(400, "Nothing was accepted from this body.", errors=errors)
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
    return moment, moment.astimezone(UTC).isoformat()


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
        if not (keys <= ALLOWED and len(keys) >= len(REQUIRED) and all(key in item for key in REQUIRED)):
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
        return _response(_unauthorized())
    early = _check_headers(request.content_type or "", request.headers.get("Content-Length"))
    if early is not None:
        return _response(early)
    raw = request.read(settings.INGEST_MAX_BODY_BYTES + 1)
    if len(raw) > settings.INGEST_MAX_BODY_BYTES:
        return _response(_too_large())
    retry_after = pipeline.rate_limit_hit(identity.device_id, identity.rate_limit_per_minute)
    if retry_after:
        return _error(429, "This device sends faster than its rate.", retry_after=retry_after)
    if pipeline.backlog_exceeded():
        return _error(503, "The pipeline is backlogged; retry later.", retry_after=5)
    items, bad = _parse_and_validate(raw, identity.metrics)
    if bad is not None:
        return _response(bad)
    # One autocommitted INSERT: durable when it returns, one round trip (an atomic block would
    # add BEGIN and COMMIT round trips for nothing).
    IngestInbox.objects.create(device_id=identity.device_id, count=len(items), items=items)
    pipeline.nudge()
    return JsonResponse({"accepted": len(items)}, status=202)


# ----------------------------------------------------------------------------- the lean path

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]

# Binary parameters (%b): a text array literal of JSON bodies is escaped in Python, ~4 ms for
# a 100-heartbeat body; binary arrays carry the strings as they are.
INBOX_INSERT = (
    "INSERT INTO fleet_ingestinbox (device_id, received_at, count, items, attempts) "
    "SELECT d, r, c, i::jsonb, 0 FROM unnest(%b::uuid[], %b::timestamptz[], %b::int[], %b::text[]) "
    "AS t(d, r, c, i)"
)
BACKLOG_QUERY = "SELECT coalesce(sum(count), 0) FROM fleet_ingestinbox"


class InboxWriter:
    """INSERTs the inbox rows of concurrent requests together: one statement, one commit.

    A request waits for the commit that carries its row (a 202 still means durable); rows
    that arrive while a commit is out go together in the next one. If a combined INSERT
    fails because of its data, its rows are retried one by one, so one bad row fails only
    its own request; any other failure (the database unreachable, the pool timing out) is
    every waiting request's at once, instead of each trying and waiting again. Cancelled (the
    server shutting down), it fails the requests that wait rather than leave them hanging.
    """

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self._pending: list[tuple[tuple[str, datetime, int, str], asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None

    async def insert(self, device_id: str, items: list[dict[str, Any]]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        row = (device_id, datetime.now(UTC), len(items), orjson.dumps(items).decode())
        self._pending.append((row, future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        await future

    async def _run(self) -> None:
        batch: list[tuple[tuple[str, datetime, int, str], asyncio.Future[None]]] = []
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._write([row for row, _future in batch])
                except (psycopg.DataError, psycopg.IntegrityError) as exc:
                    if len(batch) == 1:
                        self._settle(batch, exc)
                        continue
                    for one in batch:
                        try:
                            await self._write([one[0]])
                        except Exception as single:  # noqa: BLE001 - handed to its request
                            self._settle([one], single)
                        else:
                            self._settle([one], None)
                except Exception as exc:  # noqa: BLE001 - handed to the requests that wait for it
                    self._settle(batch, exc)
                else:
                    self._settle(batch, None)
                batch = []
        except asyncio.CancelledError:
            gone = ConnectionAbortedError("the ingest writer was stopped")
            self._settle(batch, gone)
            self._settle(self._pending, gone)
            self._pending = []
            raise

    async def _write(self, rows: list[tuple[str, datetime, int, str]]) -> None:
        async with self.pool.connection() as conn:
            await conn.execute(INBOX_INSERT, [list(column) for column in zip(*rows, strict=True)])

    @staticmethod
    def _settle(batch: list[tuple[Any, asyncio.Future[None]]], exc: BaseException | None) -> None:
        for _row, future in batch:
            if future.done():  # the request went away
                continue
            if exc is None:
                future.set_result(None)
            else:
                future.set_exception(exc)


class _LoopState:
    """What the lean path keeps per event loop: a psycopg pool, the writer, the limiters."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        from psycopg_pool import AsyncConnectionPool

        db = settings.DATABASES["default"]
        kwargs: dict[str, Any] = {"autocommit": True}
        for key, name in (("NAME", "dbname"), ("USER", "user"), ("PASSWORD", "password")):
            if db.get(key):
                kwargs[name] = db[key]
        for key, name in (("HOST", "host"), ("PORT", "port")):
            if db.get(key):
                kwargs[name] = str(db[key])
        self.loop = loop
        self.pool = AsyncConnectionPool(
            kwargs=kwargs,
            min_size=1,
            max_size=settings.INGEST_DATABASE_POOL_SIZE,
            timeout=10,
            open=False,
            name="fleet-ingest",
        )
        self.opened = False
        self.writer = InboxWriter(self.pool)
        self.rate = pipeline.RateLimiter()
        self.nudger = pipeline.Nudger()

    async def ready(self) -> _LoopState:
        if not self.opened:
            await self.pool.open(wait=False)
            self.opened = True
        return self

    async def backlog(self) -> int:
        async with self.pool.connection() as conn:
            row = await (await conn.execute(BACKLOG_QUERY)).fetchone()
        return int(row[0]) if row else 0

    async def close(self) -> None:
        if self.opened:
            await self.pool.close()
            self.opened = False


def _security_headers(secure: bool) -> list[tuple[bytes, bytes]]:
    """The headers SecurityMiddleware and XFrameOptionsMiddleware put on the view's answers."""
    headers = []
    if settings.SECURE_HSTS_SECONDS and secure:
        value = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            value += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            value += "; preload"
        headers.append((b"strict-transport-security", value.encode()))
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append((b"x-content-type-options", b"nosniff"))
    if settings.SECURE_REFERRER_POLICY:
        policy = settings.SECURE_REFERRER_POLICY
        value = policy if isinstance(policy, str) else ",".join(policy)
        headers.append((b"referrer-policy", value.encode()))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append((b"cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY.encode()))
    headers.append((b"x-frame-options", str(getattr(settings, "X_FRAME_OPTIONS", "DENY")).upper().encode()))
    return headers


class IngestEndpoint:
    """ASGI: the ingest path answered on the event loop; every other request to `fallback`.

    Takes a request only when Django would serve it as-is: PostgreSQL, `INGEST_LEAN_PATH`
    on, a Host in ALLOWED_HOSTS (no X-Forwarded-Host in use), no HTTPS redirect due. Then it
    runs the view's checks in the view's order with the same answers, headers included.
    """

    def __init__(self, fallback: ASGIApp) -> None:
        self.fallback = fallback
        self.enabled = bool(settings.INGEST_LEAN_PATH) and settings.DATABASES["default"]["ENGINE"] in (
            "django.db.backends.postgresql",
        )
        self._state: _LoopState | None = None
        self._headers = {secure: _security_headers(secure) for secure in (False, True)}
        allowed = settings.ALLOWED_HOSTS
        if settings.DEBUG and not allowed:
            allowed = [".localhost", "127.0.0.1", "[::1]"]
        self._allowed_hosts = list(allowed)
        self._host_ok: dict[bytes, bool] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not self.enabled
            or scope["type"] != "http"
            or scope["path"] != scope.get("root_path", "") + PATH
            or (secure := self._secure(scope)) is None
        ):
            await self.fallback(scope, receive, send)
            return
        try:
            answer = await self._handle(scope, receive)
        except _ClientGoneError:
            return
        except Exception:
            # What Django does with a view's exception: log it, answer handler500's page.
            log.exception("ingest: the lean path failed on a request")
            await _send_server_error(send)
            return
        if answer is None:  # a header Django should judge; nothing of the body was read
            await self.fallback(scope, receive, send)
            return
        await self._send(send, answer, secure)

    def _secure(self, scope: Scope) -> bool | None:
        """Whether the request came over HTTPS; None when Django must take it (a Host outside
        ALLOWED_HOSTS, a missing Host, X-Forwarded-Host in use, an HTTPS redirect due)."""
        if settings.USE_X_FORWARDED_HOST:
            return None
        host = next((value for name, value in scope["headers"] if name == b"host"), None)
        if host is None:
            return None
        ok = self._host_ok.get(host)
        if ok is None:
            domain, _port = split_domain_port(host.decode("latin-1"))
            ok = bool(domain) and validate_host(domain, self._allowed_hosts)
            if len(self._host_ok) < 1000:
                self._host_ok[host] = ok
        if not ok:
            return None
        secure = scope.get("scheme") == "https"
        proxy = settings.SECURE_PROXY_SSL_HEADER
        if proxy:
            header, expected = proxy
            wanted = header.removeprefix("HTTP_").lower().replace("_", "-").encode("latin-1")
            for name, value in scope["headers"]:
                if name == wanted:
                    secure = value.decode("latin-1").split(",", 1)[0].strip() == expected
        if settings.SECURE_SSL_REDIRECT and not secure:
            return None
        return secure

    async def state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        if self._state is None or self._state.loop is not loop:
            self._state = _LoopState(loop)
        return await self._state.ready()

    async def close(self) -> None:
        """Close this loop's pool and Redis client (tests; a server process just exits)."""
        if self._state is not None:
            await self._state.close()
            self._state = None
        await pipeline.close_async_redis_client()

    async def _handle(self, scope: Scope, receive: Receive) -> Answer | None:
        if scope["method"] != "POST":
            return _answer(405, "Use POST.")
        authorization = content_type = b""
        content_length: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                content_length = value
        scheme, _, token = authorization.decode("latin-1").partition(" ")
        token = token.strip()
        if scheme != "Device" or not token:
            return _unauthorized()
        state = await self.state()
        identity = await authenticate_device_async(token, state.pool)
        if identity is None:
            return _unauthorized()
        try:
            main_type = parse_header_parameters(content_type.decode("latin-1"))[0]
        except ValueError:
            return None  # an odd Content-Type: Django decides what it makes of it
        early = _check_headers(main_type, content_length.decode("latin-1") if content_length else None)
        if early is not None:
            return early
        raw = await _read_body(receive, settings.INGEST_MAX_BODY_BYTES + 1)
        if len(raw) > settings.INGEST_MAX_BODY_BYTES:
            return _too_large()
        retry_after = await state.rate.hit(identity.device_id, identity.rate_limit_per_minute)
        if retry_after:
            return _answer(429, "This device sends faster than its rate.", retry_after=retry_after)
        if await pipeline.backlog_exceeded_async(state.backlog):
            return _answer(503, "The pipeline is backlogged; retry later.", retry_after=5)
        items, bad = _parse_and_validate(raw, identity.metrics)
        if bad is not None:
            return bad
        try:
            await state.writer.insert(identity.device_id, items)
        except (psycopg.OperationalError, PoolTimeout):
            log.warning("ingest: the database is unavailable", exc_info=True)
            return _answer(503, "The database is unavailable; retry later.", retry_after=5)
        state.nudger.nudge()
        return 202, {"accepted": len(items)}, []

    async def _send(self, send: Send, answer: Answer, secure: bool) -> None:
        status, payload, extra = answer
        body = json.dumps(payload, cls=DjangoJSONEncoder).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in extra),
            *self._headers[secure],
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _ClientGoneError(Exception):
    """The client disconnected before its body was read: nobody to answer."""


async def _read_body(receive: Receive, limit: int) -> bytes:
    """Up to `limit` bytes of the body (the rest is not read)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGoneError
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit or not message.get("more_body", False):
            return b"".join(chunks)[:limit]


async def _send_server_error(send: Send) -> None:
    """handler500's page (portal.views.error_500), as Django answers an unexpected error."""
    from django.template import loader

    try:
        body = loader.get_template("500.html").render({}).encode()
    except Exception:  # noqa: BLE001 - the error page must not fail in turn
        body = b"<h1>Server Error (500)</h1>"
    headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})
