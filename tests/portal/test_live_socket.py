"""The live socket (`/ws/live/`): session auth, origin check, tenant groups, closing on deactivation.

Runs the real ASGI application in-process against the real Redis channel layer.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client

from portal import live, services
from portal.asgi import application
from portal.models import Customer, User

pytestmark = pytest.mark.django_db(transaction=True)


def _headers(user: User | None, origin: str = "http://testserver") -> list[tuple[bytes, bytes]]:
    headers = [(b"origin", origin.encode()), (b"host", b"testserver")]
    if user is not None:
        client = Client()
        client.force_login(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return headers


async def _connect(headers: list[tuple[bytes, bytes]]) -> tuple[WebsocketCommunicator, bool, Any]:
    communicator = WebsocketCommunicator(application, "/ws/live/", headers=headers)
    connected, detail = await communicator.connect(timeout=5)
    return communicator, connected, detail


async def _events(sock: WebsocketCommunicator, count: int, timeout: float = 5) -> list[dict[str, Any]]:
    """The next `count` messages, whether they came one per frame or several in an array."""
    events: list[dict[str, Any]] = []
    while len(events) < count:
        frame = await sock.receive_json_from(timeout=timeout)
        events += frame if isinstance(frame, list) else [frame]
    assert len(events) == count, f"more messages than expected: {events[count:]}"
    return events


def test_anonymous_sockets_are_refused(db: None) -> None:
    headers = _headers(None)

    async def scenario() -> None:
        communicator, connected, code = await _connect(headers)
        assert not connected
        assert code == 4401
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_foreign_origins_are_refused(viewer_a: User) -> None:
    headers = _headers(viewer_a, origin="http://evil.example")

    async def scenario() -> None:
        communicator, connected, _ = await _connect(headers)
        assert not connected
        await communicator.disconnect()

    async_to_sync(scenario)()


@pytest.mark.parametrize(
    ("host", "origin", "accepted"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000", True),  # its own origin
        ("127.0.0.1:8000", "http://127.0.0.1:9999", False),  # a page on another port of the host
        ("127.0.0.1:8000", "http://127.0.0.1", False),
        ("testserver", "http://testserver:80", True),
        ("testserver", "https://testserver", False),  # another scheme is another origin
        ("testserver", "null", False),
        ("evil.example", "http://evil.example", False),  # a Host that is not ours (DNS rebinding)
        ("portal.example.com", "https://portal.example.com", True),  # CSRF_TRUSTED_ORIGINS
        ("portal.example.com", "https://portal.example.com:8443", False),
    ],
)
def test_only_the_exact_origin_opens_a_socket(
    viewer_a: User, settings: Any, host: str, origin: str, accepted: bool
) -> None:
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "portal.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://portal.example.com"]
    headers = [
        (b"host", host.encode()) if name == b"host" else (name, value)
        for name, value in _headers(viewer_a, origin)
    ]

    async def scenario() -> None:
        communicator, connected, _ = await _connect(headers)
        assert connected is accepted
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_behind_the_tls_proxy_the_origin_is_https(viewer_a: User, settings: Any) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    plain = _headers(viewer_a, "https://testserver")
    proxied = [*plain, (b"x-forwarded-proto", b"https")]

    async def scenario() -> None:
        communicator, connected, _ = await _connect(proxied)
        assert connected
        await communicator.disconnect()
        communicator, connected, _ = await _connect(plain)
        assert not connected  # no proxy said so: plain http, another origin
        await communicator.disconnect()

    async_to_sync(scenario)()


def test_a_socket_gets_its_customers_events_and_never_anothers(
    viewer_a: User, viewer_b: User, customer_a: Customer, customer_b: Customer, support: User
) -> None:
    headers_a, headers_b, headers_staff = _headers(viewer_a), _headers(viewer_b), _headers(support)

    async def scenario() -> None:
        sock_a, ok_a, _ = await _connect(headers_a)
        sock_b, ok_b, _ = await _connect(headers_b)
        sock_staff, ok_staff, _ = await _connect(headers_staff)
        assert (ok_a, ok_b, ok_staff) == (True, True, True)
        for sock in (sock_a, sock_b, sock_staff):
            assert (await sock.receive_json_from(timeout=5))["type"] == "hello"

        await asyncio.to_thread(live.publish_for_customer, customer_b.pk, {"type": "test.event", "of": "B"})
        await asyncio.to_thread(live.publish_for_customer, customer_a.pk, {"type": "test.event", "of": "A"})

        assert await sock_a.receive_json_from(timeout=5) == {"type": "test.event", "of": "A"}
        assert await sock_b.receive_json_from(timeout=5) == {"type": "test.event", "of": "B"}
        staff_seen = await _events(sock_staff, 2)
        assert sorted(e["of"] for e in staff_seen) == ["A", "B"]
        # A's socket got A's event only: nothing else is waiting for it.
        assert await sock_a.receive_nothing(timeout=0.5)
        for sock in (sock_a, sock_b, sock_staff):
            await sock.disconnect()

    async_to_sync(scenario)()


def test_many_events_go_out_in_one_pipeline_each_to_its_groups_in_order(
    viewer_a: User, viewer_b: User, customer_a: Customer, customer_b: Customer, support: User
) -> None:
    from channels.layers import get_channel_layer

    from portal.channel_layer import LiveChannelLayer

    assert isinstance(get_channel_layer(), LiveChannelLayer)  # publish_many pipelines
    headers_a, headers_b, headers_staff = _headers(viewer_a), _headers(viewer_b), _headers(support)
    messages: list[live.Message] = []
    for n in range(30):
        for customer, name in ((customer_a, "A"), (customer_b, "B")):
            messages += live.for_customer(customer.pk, {"type": "test.event", "of": name, "n": n})

    async def scenario() -> None:
        sockets = [await _connect(headers) for headers in (headers_a, headers_b, headers_staff)]
        for sock, connected, _ in sockets:
            assert connected
            assert (await sock.receive_json_from(timeout=5))["type"] == "hello"
        await asyncio.to_thread(live.publish_many, messages)
        (sock_a, _, _), (sock_b, _, _), (sock_staff, _, _) = sockets
        got_a, got_b, got_staff = (
            await _events(sock_a, 30),
            await _events(sock_b, 30),
            await _events(sock_staff, 60),
        )
        assert [(m["of"], m["n"]) for m in got_a] == [("A", n) for n in range(30)]
        assert [(m["of"], m["n"]) for m in got_b] == [("B", n) for n in range(30)]
        assert [(m["of"], m["n"]) for m in got_staff] == [(o, n) for n in range(30) for o in "AB"]
        for sock, _, _ in sockets:
            assert await sock.receive_nothing(timeout=0.3)
            await sock.disconnect()

    async_to_sync(scenario)()


def test_a_group_message_is_decoded_once_per_process() -> None:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    data = layer.serialize({"type": live.EVENTS, "events": [[None, "test.event", None, '{"n":1}']]})
    first = layer.deserialize(data)
    assert first == {"type": live.EVENTS, "events": [[None, "test.event", None, '{"n":1}']]}
    assert layer.deserialize(data) is first  # every socket of the group gets this one object
    for n in range(layer.DECODED_KEPT):  # bounded: old messages are forgotten
        layer.deserialize(layer.serialize({"type": live.EVENTS, "events": [[None, "t", None, str(n)]]}))
    assert layer.deserialize(data) is not first


def test_invoice_run_progress_reaches_staff_sockets_only(admin_a: User, finance: User) -> None:
    from billing.models import InvoiceRun
    from billing.runs import publish_progress

    run = InvoiceRun.objects.create(period="2026-10", started_by=finance)
    headers_customer, headers_finance = _headers(admin_a), _headers(finance)

    async def scenario() -> None:
        (customer, ok_c, _), (staff, ok_s, _) = (
            await _connect(headers_customer),
            await _connect(headers_finance),
        )
        assert (ok_c, ok_s) == (True, True)
        for sock in (customer, staff):
            assert (await sock.receive_json_from(timeout=5))["type"] == "hello"
        await asyncio.to_thread(publish_progress, run)
        got = await staff.receive_json_from(timeout=5)
        assert (got["type"], got["run"], got["started_by"]) == (
            "invoice_run.progress",
            str(run.pk),
            finance.email,
        )
        assert await customer.receive_nothing(timeout=0.5)
        for sock in (customer, staff):
            await sock.disconnect()

    async_to_sync(scenario)()


def test_ping_pong_and_unknown_messages(viewer_a: User) -> None:
    headers = _headers(viewer_a)

    async def scenario() -> None:
        sock, ok, _ = await _connect(headers)
        assert ok
        await sock.receive_json_from(timeout=5)
        await sock.send_json_to({"type": "ping"})
        assert await sock.receive_json_from(timeout=5) == {"type": "pong"}
        await sock.send_json_to({"type": "subscribe.everything"})
        assert (await sock.receive_json_from(timeout=5))["type"] == "error"
        await sock.disconnect()

    async_to_sync(scenario)()


def test_deactivation_closes_the_users_sockets(viewer_a: User, admin_a: User) -> None:
    headers = _headers(viewer_a)

    async def scenario() -> None:
        sock, ok, _ = await _connect(headers)
        assert ok
        await sock.receive_json_from(timeout=5)
        await asyncio.to_thread(services.user_set_active, actor=admin_a, user=viewer_a, active=False)
        closed = await sock.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": 4403}

    async_to_sync(scenario)()


def test_subscribing_to_an_asset_checks_access_like_the_pages(
    viewer_a: User, admin_a: User, customer_b: Customer
) -> None:
    from tests.factories import AssetFactory

    mine = AssetFactory(site__customer=viewer_a.customer)
    theirs = AssetFactory(site__customer=customer_b)
    headers, headers_other = _headers(viewer_a), _headers(admin_a)

    async def scenario() -> None:
        sock, ok, _ = await _connect(headers)
        other, ok_other, _ = await _connect(headers_other)
        assert (ok, ok_other) == (True, True)
        await sock.receive_json_from(timeout=5)
        await other.receive_json_from(timeout=5)
        await sock.send_json_to({"type": "subscribe", "topic": "asset", "id": str(mine.pk)})
        assert await sock.receive_json_from(timeout=5) == {
            "type": "subscribed",
            "topic": "asset",
            "id": str(mine.pk),
        }
        answers = []
        for object_id, topic in (
            (str(theirs.pk), "asset"),
            ("00000000-0000-0000-0000-000000000000", "asset"),
            ("not-a-uuid", "asset"),
            (str(mine.pk), "invoice"),
        ):
            await sock.send_json_to({"type": "subscribe", "topic": topic, "id": object_id})
            answer = await sock.receive_json_from(timeout=5)
            answers.append((answer["type"], answer["detail"]))
        assert set(answers) == {("error", "Not found.")}
        # Events for B's asset never reach this socket, subscribed or not; A's topic events
        # reach the sockets that follow the topic only.
        theirs_values = {"type": "asset.values", "asset": str(theirs.pk)}
        mine_values = {"type": "asset.values", "asset": str(mine.pk)}
        await asyncio.to_thread(
            live.publish_many,
            [
                *live.for_customer(customer_b.pk, theirs_values, topic=live.asset_topic(theirs.pk)),
                *live.for_customer(viewer_a.customer_id, mine_values, topic=live.asset_topic(mine.pk)),
            ],
        )
        assert await _events(sock, 1) == [mine_values]
        assert await sock.receive_nothing(timeout=0.5)
        assert await other.receive_nothing(timeout=0.1)  # same customer, not subscribed
        await sock.send_json_to({"type": "unsubscribe", "topic": "asset", "id": str(mine.pk)})
        assert (await sock.receive_json_from(timeout=5))["type"] == "unsubscribed"
        await asyncio.to_thread(
            live.publish_for_customer,
            viewer_a.customer_id,
            {**mine_values, "n": 2},
            live.asset_topic(mine.pk),
        )
        assert await sock.receive_nothing(timeout=0.5)
        for each in (sock, other):
            await each.disconnect()

    async_to_sync(scenario)()


def test_events_ready_together_go_out_as_one_array_frame(support: User, customer_a: Customer) -> None:
    headers = _headers(support)
    payloads = [{"type": "asset.status", "asset": f"a{n}", "n": n} for n in range(300)]

    async def scenario() -> None:
        sock, ok, _ = await _connect(headers)
        assert ok
        await sock.receive_json_from(timeout=5)
        await asyncio.to_thread(
            live.publish_many, [m for p in payloads for m in live.for_customer(customer_a.pk, p)]
        )
        first = await sock.receive_json_from(timeout=5)
        second = await sock.receive_json_from(timeout=5)
        # One batch, two frames: at most EVENTS_PER_FRAME events in one, in order.
        assert isinstance(first, list)
        assert len(first) == 256
        assert first + (second if isinstance(second, list) else [second]) == payloads
        assert await sock.receive_nothing(timeout=0.3)
        await sock.disconnect()

    async_to_sync(scenario)()


def test_updates_are_coalesced_to_one_per_asset_per_second(viewer_a: User, customer_a: Customer) -> None:
    headers = _headers(viewer_a)

    async def scenario() -> None:
        sock, ok, _ = await _connect(headers)
        assert ok
        await sock.receive_json_from(timeout=5)
        for n in range(10):
            await asyncio.to_thread(
                live.publish_for_customer, customer_a.pk, {"type": "asset.status", "asset": "one", "n": n}
            )
        await asyncio.to_thread(
            live.publish_for_customer, customer_a.pk, {"type": "asset.status", "asset": "two", "n": 0}
        )
        # (A timed-out receive cancels the application under test, so wait for exactly three.)
        received = await _events(sock, 3, timeout=3)
        assert await sock.receive_nothing(timeout=1.5)
        ones = [m["n"] for m in received if m["asset"] == "one"]
        assert ones == [0, 9]  # the first at once, the newest a second later, nothing between
        assert [m["n"] for m in received if m["asset"] == "two"] == [0]
        await sock.disconnect()

    async_to_sync(scenario)()


def test_logging_out_closes_the_users_sockets(viewer_a: User) -> None:
    client = Client()
    client.force_login(viewer_a)
    headers = [
        (b"origin", b"http://testserver"),
        (b"host", b"testserver"),
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
    ]

    async def scenario() -> None:
        sock, ok, _ = await _connect(headers)
        assert ok
        await sock.receive_json_from(timeout=5)
        await asyncio.to_thread(client.post, "/accounts/logout/")
        assert await sock.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}

    async_to_sync(scenario)()


def test_event_frames_skip_the_session_wrapper_and_nothing_else() -> None:
    from channels.sessions import InstanceSessionWrapper

    from portal.consumers import LiveConsumer

    async def server_send(message: dict[str, Any]) -> None:
        raise AssertionError("not called here")

    consumer = LiveConsumer()
    consumer.base_send = InstanceSessionWrapper({"cookies": {}}, server_send).send
    assert consumer._frame_send() is server_send
    consumer.base_send = server_send  # another stack: its send as it is
    assert consumer._frame_send() is server_send


def test_a_large_round_is_split_into_broadcasts_and_arrives_whole_and_in_order(
    support: User, viewer_a: User, customer_a: Customer, customer_b: Customer
) -> None:
    from portal.channel_layer import BROADCAST_MAX

    headers_staff, headers_a = _headers(support), _headers(viewer_a)
    count = BROADCAST_MAX * 2  # per customer; staff gets both customers' events
    messages: list[live.Message] = []
    for n in range(count):
        for customer, name in ((customer_a, "A"), (customer_b, "B")):
            messages += live.for_customer(customer.pk, {"type": "test.event", "of": name, "n": n})

    async def scenario() -> None:
        (staff, ok_s, _), (sock_a, ok_a, _) = await _connect(headers_staff), await _connect(headers_a)
        assert (ok_s, ok_a) == (True, True)
        for sock in (staff, sock_a):
            await sock.receive_json_from(timeout=5)
        await asyncio.to_thread(live.publish_many, messages)
        got_staff = await _events(staff, 2 * count, timeout=10)
        got_a = await _events(sock_a, count, timeout=10)
        assert [(m["of"], m["n"]) for m in got_staff] == [(o, n) for n in range(count) for o in "AB"]
        assert [(m["of"], m["n"]) for m in got_a] == [("A", n) for n in range(count)]
        for sock in (staff, sock_a):
            assert await sock.receive_nothing(timeout=0.3)
            await sock.disconnect()

    async_to_sync(scenario)()


def test_alarms_are_coalesced_per_alarm_not_per_asset(viewer_a: User, customer_a: Customer) -> None:
    headers = _headers(viewer_a)
    raised = [{"type": "alarm.raised", "alarm": f"alarm-{n}", "asset": "one"} for n in range(3)]

    async def scenario() -> None:
        sock, ok, _ = await _connect(headers)
        assert ok
        await sock.receive_json_from(timeout=5)
        for payload in raised:  # three alarms of one asset within a second: all three count
            await asyncio.to_thread(live.publish_for_customer, customer_a.pk, payload)
        assert await _events(sock, 3) == raised
        assert await sock.receive_nothing(timeout=0.5)
        await sock.disconnect()

    async_to_sync(scenario)()


def test_the_broadcast_channel_carries_broadcasts_only(viewer_a: User, customer_a: Customer) -> None:
    """Every socket of a process is in the broadcast group: a message there that is not a
    broadcast reaches no socket (it would reach every customer's)."""
    from channels.layers import get_channel_layer

    from portal.channel_layer import BROADCAST_GROUP

    headers = _headers(viewer_a)
    stray = {"type": live.EVENTS, "events": [[None, "test.event", None, '{"type":"test.event","of":"?"}']]}

    async def scenario() -> None:
        sock, ok, _ = await _connect(headers)
        assert ok
        await sock.receive_json_from(timeout=5)
        await get_channel_layer().group_send(BROADCAST_GROUP, stray)
        await asyncio.to_thread(live.publish_for_customer, customer_a.pk, {"type": "test.event", "of": "A"})
        assert await _events(sock, 1) == [{"type": "test.event", "of": "A"}]
        assert await sock.receive_nothing(timeout=0.5)
        await sock.disconnect()

    async_to_sync(scenario)()


def test_an_asset_id_in_any_spelling_follows_the_same_topic(viewer_a: User) -> None:
    from tests.factories import AssetFactory

    mine = AssetFactory(site__customer=viewer_a.customer)
    headers = _headers(viewer_a)
    values = {"type": "asset.values", "asset": str(mine.pk)}

    async def scenario() -> None:
        sock, ok, _ = await _connect(headers)
        assert ok
        await sock.receive_json_from(timeout=5)
        await sock.send_json_to({"type": "subscribe", "topic": "asset", "id": mine.pk.hex.upper()})
        assert (await sock.receive_json_from(timeout=5))["type"] == "subscribed"
        await asyncio.to_thread(
            live.publish_for_customer, viewer_a.customer_id, values, live.asset_topic(mine.pk)
        )
        assert await _events(sock, 1) == [values]
        await sock.disconnect()

    async_to_sync(scenario)()
