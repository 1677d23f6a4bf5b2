"""The lean ASGI door of `POST /api/v1/ingest/heartbeats` (docs/ingest.md, "The lean path").

An ASGI app in front of Django (portal/asgi.py) that answers this one path itself on the
event loop — no Django request cycle, no middleware, no thread hop; Redis through
redis.asyncio (admission.py); the inbox rows INSERTed through its own psycopg pool, the rows
of concurrent requests in one statement and one commit, each request answered 202 only after
that commit. It takes a request only when Django would serve it as-is — Django itself judges
the Host and the HTTPS redirect (`ASGIRequest.get_host`, `SecurityMiddleware`), once per
distinct Host and scheme — and adds the headers Django's middleware would, taken from that
middleware. Anything else goes on to Django untouched (view.py answers it).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from csp.middleware import CSPMiddleware
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.http import parse_header_parameters
from django.utils.module_loading import import_string
from psycopg_pool import AsyncConnectionPool

from fleet.ingest import admission, contract
from fleet.ingest.auth import authenticate_device_async
from portal import dbpool
from portal.errors import SERVER_ERROR

log = logging.getLogger(__name__)

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
            timeout=settings.INGEST_DATABASE_POOL_TIMEOUT,  # PostgreSQL away: a 503 within it
            reconnect_timeout=dbpool.RECONNECT_SECONDS,  # a failed connect retried ~1 s apart
            reconnect_failed=dbpool.reconnect_failed_async,
            check=AsyncConnectionPool.check_connection,  # dead after a PostgreSQL restart: replaced
            open=False,
            name="fleet-ingest",
        )
        self.opened = False
        self.writer = InboxWriter(self.pool)
        self.rate = admission.RateLimiter()
        self.nudger = admission.Nudger()

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


def _no_view(_request: HttpRequest) -> HttpResponse:
    raise AssertionError("the middleware is asked for its headers and redirects only")


class _Probe(HttpRequest):
    """A request to the ingest path, over HTTPS or not, for the middleware to judge."""

    def __init__(self, secure: bool) -> None:
        super().__init__()
        self.secure = secure
        self.path = self.path_info = contract.PATH

    def is_secure(self) -> bool:
        return self.secure


# Middleware of MIDDLEWARE that only add headers to the view's answers: the lean door asks
# them for those headers (the others do nothing to the ingest view's answers).
HEADER_MIDDLEWARE = (SecurityMiddleware, XFrameOptionsMiddleware, CSPMiddleware)


def _middleware_headers(secure: bool) -> list[tuple[bytes, bytes]]:
    """The headers the configured header middleware put on the view's answers, as they make
    them (HSTS over HTTPS only, X-Frame-Options, nosniff, the Content-Security-Policy ...)."""
    request, response = _Probe(secure), HttpResponse()
    for path in reversed(settings.MIDDLEWARE):  # process_response runs last to first
        middleware = import_string(path)
        if issubclass(middleware, HEADER_MIDDLEWARE):
            response = middleware(_no_view).process_response(request, response)
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.items()
        if name.lower() != "content-type"
    ]


class IngestEndpoint:
    """ASGI: the ingest path answered on the event loop; every other request to `fallback`.

    Takes a request only when Django would serve it as-is: `INGEST_LEAN_PATH` on, a Host
    Django accepts (no X-Forwarded-Host in use), no HTTPS redirect due. Then it runs the
    view's checks in the view's order with the same answers, headers included.
    """

    def __init__(self, fallback: ASGIApp) -> None:
        self.fallback = fallback
        self.enabled = bool(settings.INGEST_LEAN_PATH)
        self._state: _LoopState | None = None
        self._headers = {secure: _middleware_headers(secure) for secure in (False, True)}
        self._judged_headers = {b"host"}
        if settings.SECURE_PROXY_SSL_HEADER:
            name = settings.SECURE_PROXY_SSL_HEADER[0].removeprefix("HTTP_").lower().replace("_", "-")
            self._judged_headers.add(name.encode("latin-1"))
        self._judged: dict[tuple[Any, ...], bool | None] = {}
        self._redirects = SecurityMiddleware(_no_view)
        # Made once, not per request: what a Content-Type header says (few distinct ones), and
        # the whole answer to an accepted request (its count and the scheme are all it varies by).
        self._content_types: dict[bytes, str | None] = {}
        self._accepted: dict[tuple[int, bool], list[Message]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            not self.enabled
            or scope["type"] != "http"
            or scope["path"] != scope.get("root_path", "") + contract.PATH
            or (secure := self._secure(scope)) is None
        ):
            await self.fallback(scope, receive, send)
            return
        try:
            answer = await self._handle(scope, receive)
        except _ClientGoneError:
            return
        except psycopg.OperationalError:  # PostgreSQL away (restarting): PoolTimeout is one too
            log.warning("ingest: the database is unavailable", exc_info=True)
            answer = contract.database_unavailable()
        except Exception:
            # What Django does with a view's exception: log it, answer as handler500 does.
            log.exception("ingest: the lean path failed on a request")
            await _send_server_error(send)
            return
        if answer is None:  # a header Django should judge; nothing of the body was read
            await self.fallback(scope, receive, send)
            return
        await self._send(send, answer, secure)

    def _secure(self, scope: Scope) -> bool | None:
        """Whether the request came over HTTPS; None when Django must take it (no Host, a Host
        Django refuses, X-Forwarded-Host in use, an HTTPS redirect due).

        Django judges: its ASGIRequest's `get_host()` (ALLOWED_HOSTS, and DEBUG's default
        hosts) and `is_secure()` (SECURE_PROXY_SSL_HEADER), and SecurityMiddleware's redirect
        rule. The verdict is kept per scheme and the headers it depends on.
        """
        if settings.USE_X_FORWARDED_HOST or not any(name == b"host" for name, _value in scope["headers"]):
            return None  # (without a Host, Django would judge SERVER_NAME: let it)
        key = (
            scope.get("scheme"),
            scope.get("server"),
            *((name, value) for name, value in scope["headers"] if name in self._judged_headers),
        )
        try:
            return self._judged[key]
        except KeyError:
            pass
        request = ASGIRequest(scope, io.BytesIO())
        verdict: bool | None
        try:
            request.get_host()
        except DisallowedHost:
            verdict = None
        else:
            verdict = None if self._redirects.process_request(request) is not None else request.is_secure()
        if len(self._judged) < 1000:
            self._judged[key] = verdict
        return verdict

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
        await admission.close_async_redis_client()

    async def _handle(self, scope: Scope, receive: Receive) -> contract.Answer | None:
        if scope["method"] != "POST":
            return contract.method_not_allowed()
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
            return contract.unauthorized()
        state = await self.state()
        identity = await authenticate_device_async(token, state.pool)
        if identity is None:
            return contract.unauthorized()
        main_type = self._main_type(content_type)
        if main_type is None:
            return None  # an odd Content-Type: Django decides what it makes of it
        early = contract.check_headers(
            main_type, content_length.decode("latin-1") if content_length else None
        )
        if early is not None:
            return early
        raw = await _read_body(receive, settings.INGEST_MAX_BODY_BYTES + 1)
        if len(raw) > settings.INGEST_MAX_BODY_BYTES:
            return contract.too_large()
        retry_after = await state.rate.hit(identity.device_id, identity.rate_limit_per_minute)
        if retry_after:
            return contract.over_rate(retry_after)
        if await admission.backlog_exceeded_async(state.backlog):
            return contract.backlogged()
        items, bad = contract.parse_and_validate(raw, identity.metrics)
        if bad is not None:
            return bad
        await state.writer.insert(identity.device_id, items)  # the database away: a 503 (__call__)
        state.nudger.nudge()
        return contract.accepted(len(items))

    def _main_type(self, content_type: bytes) -> str | None:
        """The media type of a Content-Type header as Django reads it; None when it cannot."""
        try:
            return self._content_types[content_type]
        except KeyError:
            pass
        main_type: str | None
        try:
            main_type = parse_header_parameters(content_type.decode("latin-1"))[0]
        except ValueError:
            main_type = None
        if len(self._content_types) < 100:
            self._content_types[content_type] = main_type
        return main_type

    async def _send(self, send: Send, answer: contract.Answer, secure: bool) -> None:
        status, payload, extra = answer
        if status == 202 and not extra:
            key = (int(payload["accepted"]), secure)
            messages = self._accepted.get(key)
            if messages is None:
                messages = self._messages(answer, secure)
                if len(self._accepted) < 1000:
                    self._accepted[key] = messages
        else:
            messages = self._messages(answer, secure)
        for message in messages:  # the server only reads them: one pair serves every request
            await send(message)

    def _messages(self, answer: contract.Answer, secure: bool) -> list[Message]:
        status, payload, extra = answer
        body = json.dumps(payload, cls=DjangoJSONEncoder).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *((name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in extra),
            *self._headers[secure],
        ]
        return [
            {"type": "http.response.start", "status": status, "headers": headers},
            {"type": "http.response.body", "body": body},
        ]


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
    """What Django answers an unexpected error under /api/ (portal.errors.server_error)."""
    body = json.dumps(SERVER_ERROR).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 500, "headers": headers})
    await send({"type": "http.response.body", "body": body})
