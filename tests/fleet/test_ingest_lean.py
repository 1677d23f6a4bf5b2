"""The lean ASGI ingest path (fleet.ingest.endpoint.IngestEndpoint) answers exactly like the Django view.

Each request goes through the endpoint as an ASGI server would call it; the same request
through Django's test client (the view) is the reference: status, JSON body, the headers a
device can see, and the inbox row it leaves behind.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from fleet import credentials
from fleet.ingest import admission, auth
from fleet.ingest.endpoint import IngestEndpoint
from fleet.models import IngestInbox
from tests.fleet.conftest import Installed
from tests.fleet.test_ingest_api import beat

pytestmark = pytest.mark.django_db(transaction=True)  # the endpoint has connections of its own


@pytest.fixture(autouse=True)
def _no_worker_nudges(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests check answers and inbox rows only. A session-wide Celery worker started by an
    earlier integration test would otherwise drain the rows while the test database is flushed
    (a deadlock with the TRUNCATE); the nudge itself is tested in tests/fleet/test_ingest_live.py."""
    monkeypatch.setattr(admission.Nudger, "nudge", lambda self: None)
    monkeypatch.setattr(admission, "nudge", lambda: None)


URL = "/api/v1/ingest/heartbeats"
HEADERS = (
    "content-type", "retry-after", "www-authenticate", "x-frame-options", "x-content-type-options",
    "referrer-policy", "cross-origin-opener-policy", "content-security-policy",
)  # fmt: skip


class Handed:
    """The fallback app: records what the endpoint handed on to Django."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


Request = tuple[str, str, dict[str, str], bytes]  # method, path, headers, body
Answer = tuple[int, dict[str, str], bytes]


async def _call(endpoint: IngestEndpoint, request: Request) -> Answer:
    method, path, headers, body = request
    incoming = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "root_path": "", "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "server": ("testserver", 80), "client": ("127.0.0.1", 40000),
    }  # fmt: skip
    await endpoint(scope, receive, send)
    start = sent[0]
    return (
        start["status"],
        {k.decode(): v.decode() for k, v in start["headers"]},
        b"".join(m.get("body", b"") for m in sent[1:]),
    )


def lean(*requests: Request, fallback: Handed | None = None) -> list[Answer]:
    """Send requests through a fresh endpoint, concurrently, on one event loop."""
    endpoint = IngestEndpoint(fallback or Handed())

    async def run() -> list[Answer]:
        try:
            return list(await asyncio.gather(*(_call(endpoint, r) for r in requests)))
        finally:
            await endpoint.close()

    return asyncio.run(run())


def post(installed: Installed | None, body: Any, *, raw: bytes | None = None, **headers: str) -> Request:
    data = raw if raw is not None else json.dumps(body).encode()
    sent = {"Host": "testserver", "Content-Type": "application/json", "Content-Length": str(len(data))}
    if installed is not None:
        sent["Authorization"] = f"Device {installed.token}"
    sent.update(headers)
    return ("POST", URL, sent, data)


def via_view(request: Request) -> Answer:
    method, _path, headers, body = request
    extra = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    extra.pop("HTTP_CONTENT_TYPE", None)
    extra.pop("HTTP_CONTENT_LENGTH", None)
    extra.pop("HTTP_HOST", None)
    client = Client(HTTP_HOST="testserver")
    call: Callable[..., Any] = client.post if method == "POST" else client.get
    kwargs = {"data": body, "content_type": headers.get("Content-Type", "")} if method == "POST" else {}
    response = call(URL, **kwargs, **extra)
    return response.status_code, {k.lower(): v for k, v in response.items()}, response.content


def same(a: Answer, b: Answer) -> None:
    assert a[0] == b[0]
    assert json.loads(a[2]) == json.loads(b[2])
    assert {h: a[1].get(h) for h in HEADERS} == {h: b[1].get(h) for h in HEADERS}


def inbox_items() -> list[Any]:
    return [row.items for row in IngestInbox.objects.order_by("id")]


@pytest.fixture
def unlimited(fleet_a: Installed) -> Installed:
    fleet_a.device.rate_limit_per_minute = 10**6
    fleet_a.device.save()
    auth.clear_auth_cache()
    return fleet_a


CASES: list[tuple[str, Callable[[Installed], Request]]] = [
    ("one heartbeat", lambda f: post(f, beat(1, ts="2026-11-25T10:00:00+05:30"))),
    ("an array", lambda f: post(f, [beat(seq, fault_code="E1") for seq in range(2, 5)])),
    ("bad items", lambda f: post(f, [beat(9, status="nope"), beat(10, metrics={"rpm": 1})])),
    ("not JSON", lambda f: post(f, None, raw=b"{not json")),
    ("NaN", lambda f: post(f, None, raw=b'{"seq": NaN}')),
    ("a huge integer", lambda f: post(f, beat(seq=2**64))),
    ("a ts before year 1 in UTC", lambda f: post(f, beat(14, ts="0001-01-01T00:00:00+01:00"))),
    ("NUL in a fault code", lambda f: post(f, beat(12, fault_code="E\u0000"))),  # PostgreSQL stores no NUL
    ("a lone surrogate", lambda f: post(f, beat(13, fault_code="\ud800"))),  # json.dumps escapes it
    ("wrong content type", lambda f: post(f, beat(), **{"Content-Type": "text/plain"})),
    ("with a charset", lambda f: post(f, beat(11), **{"Content-Type": "application/json; charset=utf-8"})),
    ("unknown token", lambda f: post(None, beat(), Authorization="Device fpd_00000000_nope")),
    ("no token", lambda f: post(None, beat())),
    ("GET", lambda f: ("GET", URL, {"Host": "testserver", "Authorization": f"Device {f.token}"}, b"")),
]  # fmt: skip


@pytest.mark.parametrize(("name", "make"), CASES, ids=[c[0] for c in CASES])
def test_the_lean_path_answers_as_the_view_does(
    unlimited: Installed, name: str, make: Callable[[Installed], Request]
) -> None:
    request = make(unlimited)
    reference = via_view(request)
    stored_by_view = inbox_items()
    IngestInbox.objects.all().delete()
    (answer,) = lean(request)
    same(answer, reference)
    assert inbox_items() == stored_by_view


def test_a_body_over_the_limit_gets_413_without_reading_it(unlimited: Installed, settings: Any) -> None:
    settings.INGEST_MAX_BODY_BYTES = 2000
    big = post(unlimited, [beat(seq) for seq in range(30)])
    lying = ("POST", URL, {**big[2], "Content-Length": "10"}, big[3])  # announces less than it sends
    for request in (big, lying):
        (answer,) = lean(request)
        same(answer, via_view(request))
        assert answer[0] == 413
    assert not IngestInbox.objects.exists()


def test_concurrent_requests_are_each_committed_before_their_202(unlimited: Installed) -> None:
    answers = lean(*(post(unlimited, beat(seq)) for seq in range(40)))
    assert [a[0] for a in answers] == [202] * 40
    assert sorted(item["seq"] for items in inbox_items() for item in items) == list(range(40))


def test_a_device_over_its_rate_gets_429(fleet_a: Installed) -> None:
    admission.redis_client().flushdb()
    fleet_a.device.rate_limit_per_minute = 3
    fleet_a.device.save()
    auth.clear_auth_cache()
    answers = lean(*(post(fleet_a, beat(seq)) for seq in range(5)))
    assert sorted(a[0] for a in answers) == [202, 202, 202, 429, 429]
    limited = next(a for a in answers if a[0] == 429)
    assert 1 <= int(limited[1]["retry-after"]) <= 60
    assert IngestInbox.objects.count() == 3


def test_a_backlog_past_its_bound_gets_503(unlimited: Installed, settings: Any) -> None:
    settings.INGEST_BACKLOG_LIMIT = 5
    assert lean(post(unlimited, [beat(seq) for seq in range(6)]))[0][0] == 202
    admission._backlog["checked"] = 0.0  # the endpoint re-reads the backlog at most once a second
    (answer,) = lean(post(unlimited, beat(99)))
    assert answer[0] == 503
    assert answer[1]["retry-after"] == "5"
    assert IngestInbox.objects.count() == 1


def test_a_revoked_token_gets_401_on_the_lean_path(unlimited: Installed) -> None:
    assert lean(post(unlimited, beat(1)))[0][0] == 202
    credentials.device_revoke(device=unlimited.device, actor=None)  # bumps the generation
    auth._generation["read_at"] = float("-inf")  # a second later, as far as this process knows
    assert lean(post(unlimited, beat(2)))[0][0] == 401


def test_other_requests_go_on_to_django(unlimited: Installed) -> None:
    handed = Handed()
    other_path = ("GET", "/healthz", {"Host": "testserver"}, b"")
    bad_host = post(unlimited, beat(), Host="evil.example")
    no_host = ("POST", URL, {k: v for k, v in post(unlimited, beat())[2].items() if k != "Host"}, b"{}")
    answers = lean(other_path, bad_host, no_host, fallback=handed)
    assert [a[0] for a in answers] == [299, 299, 299]
    assert handed.paths == ["/healthz", URL, URL]
    assert not IngestInbox.objects.exists()


def test_an_https_redirect_is_left_to_django(unlimited: Installed, settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    handed = Handed()
    assert lean(post(unlimited, beat()), fallback=handed)[0][0] == 299
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    answers = lean(post(unlimited, beat(), **{"X-Forwarded-Proto": "https"}), fallback=handed)
    assert answers[0][0] == 202
    assert answers[0][1]["strict-transport-security"].startswith("max-age=")
    assert handed.paths == [URL]


def test_a_database_failure_is_a_500_page_not_a_crash(
    unlimited: Installed, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Any, rows: Any) -> None:
        raise OSError("the database went away")

    monkeypatch.setattr("fleet.ingest.endpoint.InboxWriter._write", broken)
    (answer,) = lean(post(unlimited, beat()))
    assert answer[0] == 500
    assert answer[1]["content-type"] == "application/json"
    assert "failed" in json.loads(answer[2])["detail"]  # the API's error shape, as Django answers
    assert not IngestInbox.objects.exists()


def test_an_unreachable_database_is_a_503_to_retry(
    unlimited: Installed, monkeypatch: pytest.MonkeyPatch
) -> None:
    import psycopg

    async def unreachable(self: Any, rows: Any) -> None:
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr("fleet.ingest.endpoint.InboxWriter._write", unreachable)
    (answer,) = lean(post(unlimited, beat()))
    assert answer[0] == 503
    assert answer[1]["retry-after"] == "5"
    assert not IngestInbox.objects.exists()


def _dead_pool() -> Any:
    """A real pool to a port nobody listens on: every connection attempt fails."""
    from psycopg_pool import AsyncConnectionPool

    from tests.services import free_port

    return AsyncConnectionPool(
        kwargs={"host": "127.0.0.1", "port": free_port(), "dbname": "x", "connect_timeout": 1},
        min_size=0,
        max_size=1,
        timeout=1,
        open=False,
    )


def test_a_failed_combined_insert_fails_its_requests_at_once_unless_a_row_is_to_blame() -> None:
    from psycopg_pool import PoolTimeout

    from fleet.ingest.endpoint import InboxWriter

    class Counted(InboxWriter):
        writes = 0

        async def _write(self, rows: Any) -> None:
            Counted.writes += 1
            await super()._write(rows)

    async def scenario() -> list[Any]:
        pool = _dead_pool()
        await pool.open(wait=False)
        writer = Counted(pool)
        try:
            return await asyncio.gather(
                *(writer.insert(f"device-{n}", [{"seq": n}]) for n in range(5)), return_exceptions=True
            )
        finally:
            await pool.close()

    results = asyncio.run(scenario())
    assert all(isinstance(result, PoolTimeout) for result in results)
    assert Counted.writes == 1  # not once more per row: the database is down, not a row bad


def test_a_stopped_writer_fails_the_requests_that_wait() -> None:
    from fleet.ingest.endpoint import InboxWriter

    async def scenario() -> list[Any]:
        pool = _dead_pool()
        await pool.open(wait=False)
        writer = InboxWriter(pool)
        waiting = [asyncio.ensure_future(writer.insert(f"device-{n}", [{"seq": n}])) for n in range(3)]
        await asyncio.sleep(0.2)  # the first write is out, waiting for a connection
        assert writer._task is not None
        writer._task.cancel()
        try:
            return await asyncio.gather(*waiting, return_exceptions=True)
        finally:
            await pool.close()

    results = asyncio.run(scenario())
    assert [type(result) for result in results] == [ConnectionAbortedError] * 3
