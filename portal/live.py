"""Publishing to live sockets. Publishers call these after commit; consumers only relay."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

STAFF_GROUP = "staff"


def customer_group(customer_id: UUID | str) -> str:
    return f"customer.{customer_id}"


def asset_group(asset_id: UUID | str) -> str:
    """Sockets that subscribed to one asset (after the same access check the pages use)."""
    return f"asset.{asset_id}"


def user_group(user_id: UUID | str) -> str:
    return f"user.{user_id}"


_thread_loops = threading.local()


def _run(send: Callable[[], Awaitable[None]]) -> None:
    """Run `send()` to completion from sync code, on an event loop this thread keeps.

    The channel layer keeps its Redis connections per event loop; async_to_sync would make a
    new loop, so a new connection and its handshake, for every call (tens of ms each for the
    worker's live messages). A thread that already runs a loop (sync code called from async
    code in the same thread) goes through async_to_sync, which refuses that case clearly.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:

        async def call() -> None:
            await send()

        async_to_sync(call)()
        return
    loop = getattr(_thread_loops, "loop", None)
    if loop is None or loop.is_closed() or _thread_loops.pid != os.getpid():  # new thread or forked child
        loop = _thread_loops.loop = asyncio.new_event_loop()
        _thread_loops.pid = os.getpid()
    loop.run_until_complete(send())


def publish(group: str, payload: dict[str, Any]) -> None:
    """Send `payload` (JSON with a `type`) to every socket in `group`."""
    layer = get_channel_layer()
    if layer is not None:
        _run(lambda: layer.group_send(group, {"type": "live.event", "payload": payload}))


def publish_many(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Send many (group, payload) messages in one go on this thread's event loop (see _run):
    with `portal.channel_layer.LiveChannelLayer` (the settings' layer) one Redis pipeline,
    with another layer one group_send after the other, in order."""
    layer = get_channel_layer()
    if layer is None or not messages:
        return
    events = [(group, {"type": "live.event", "payload": payload}) for group, payload in messages]
    send_many = getattr(layer, "group_send_many", None)

    async def send_all() -> None:
        if send_many is not None:
            await send_many(events)
            return
        for group, event in events:
            await layer.group_send(group, event)

    _run(send_all)


def for_customer(customer_id: UUID | str, payload: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The messages that tell a customer's sockets and staff about `payload`."""
    return [(customer_group(customer_id), payload), (STAFF_GROUP, payload)]


def publish_for_customer(customer_id: UUID | str, payload: dict[str, Any]) -> None:
    """An event about one customer's data: to that customer's sockets and to staff."""
    publish_many(for_customer(customer_id, payload))


def close_user_sockets(user_id: UUID | str) -> None:
    layer = get_channel_layer()
    if layer is not None:
        _run(lambda: layer.group_send(user_group(user_id), {"type": "live.close"}))


# topic -> resolver(user, object id) -> group name, or None when the user may not see it.
TopicResolver = Callable[[Any, str], str | None]
_topics: dict[str, TopicResolver] = {}


def register_topic(topic: str, resolver: TopicResolver) -> None:
    """Apps declare what a socket may subscribe to (fleet: "asset") from AppConfig.ready()."""
    _topics[topic] = resolver


def resolve_topic(user: Any, topic: str, object_id: str) -> str | None:
    resolver = _topics.get(topic)
    return resolver(user, object_id) if resolver is not None else None
