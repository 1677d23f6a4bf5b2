"""The live socket across a Redis restart: a real uvicorn (portal.asgi) and a real Redis of the
test's own, stopped and started again on the same port (empty, as after a crash)."""

from __future__ import annotations

import json
import time
from typing import Any

import orjson
import pytest
from asgiref.sync import async_to_sync
from django.test import Client
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection

from portal import live
from portal.channel_layer import LiveChannelLayer
from portal.models import User
from tests.integration import start_asgi, stop_process
from tests.live_sockets import open_socket
from tests.services import RedisServer

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def publish(redis: RedisServer, group: str, payload: dict[str, Any]) -> None:
    """Send an event to `group` through a channel layer on `redis`, as a worker does."""
    layer = LiveChannelLayer(hosts=[{"address": redis.url}])
    text = orjson.dumps(payload).decode()
    event = {"type": live.EVENTS, "events": [[None, payload["type"], None, text]]}

    async def send() -> None:
        await layer.broadcast_many([(group, event)])
        await layer.flush()

    async_to_sync(send)()


def received(sock: ClientConnection) -> Any:
    return json.loads(sock.recv(timeout=10))


# Whether a socket stays open across the restart (its process's pub/sub connection then reads
# all along and notices the restart), and how long Redis is away.
@pytest.mark.parametrize(
    ("kept_open", "down_for"),
    [(False, 0.0), (False, 3.0), (True, 0.0)],
    ids=["none-kept", "none-kept-3s", "one-kept"],
)
def test_a_socket_opened_right_after_a_redis_restart_connects_and_gets_live_events(
    service_env: dict[str, str], viewer_a: User, kept_open: bool, down_for: float
) -> None:
    client = Client()
    client.force_login(viewer_a)
    cookie = client.cookies["sessionid"].value
    group = live.customer_group(viewer_a.customer_id)
    redis = RedisServer().start()
    server, base = start_asgi({**service_env, "REDIS_URL": redis.url}, name="asgi-redis-restart")
    try:
        # Given a server whose channel layer holds Redis connections and subscriptions
        before = open_socket(base, cookie)
        publish(redis, group, {"type": "test.before", "n": 1})
        assert received(before) == {"type": "test.before", "n": 1}

        # When Redis restarts (empty: no subscriptions survive it)
        if not kept_open:
            before.close()
        redis.process.terminate()  # type: ignore[union-attr]
        redis.process.wait()  # type: ignore[union-attr]
        if down_for:  # sockets meanwhile are refused (the page retries), never a 500
            for _ in range(2):  # (the first finds the dead connection, the second none)
                with pytest.raises(InvalidStatus) as refused:
                    open_socket(base, cookie)
                assert refused.value.response.status_code == 403
            time.sleep(down_for)
        redis = RedisServer.on_port(redis.port).start()

        # Then the first socket after it connects, and it and the older one get live events.
        after = open_socket(base, cookie)
        publish(redis, group, {"type": "test.after", "n": 2})
        assert received(after) == {"type": "test.after", "n": 2}
        if kept_open:
            assert received(before) == {"type": "test.after", "n": 2}
        after.close()
        before.close()
    finally:
        stop_process(server)
        redis.stop()
