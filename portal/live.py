"""Publishing to live sockets. Publishers call these after commit; consumers only relay."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

import orjson
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

STAFF_GROUP = "staff"
EVENTS = "live.events"  # the channel-layer message type: a list of events for one group
EVENTS_PER_MESSAGE = 256

# (group, payload, topic): the payload goes to the sockets in `group`; with a topic, only to
# those of them that subscribed to it (see `asset_topic`).
Message = tuple[str, dict[str, Any], str | None]


def customer_group(customer_id: UUID | str) -> str:
    return f"customer.{customer_id}"


def asset_topic(asset_id: UUID | str) -> str:
    """The topic of one asset's detail events (`asset.values`).

    A topic is not a group of its own: its events travel on the groups that may see the
    object anyway (its customer's and staff), and each socket keeps those of the topics it
    subscribed to (after the same access check the pages use; `resolve_topic`) and drops the
    rest. One group message per group and publish then carries every event of a batch.
    """
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


def publish(group: str, payload: dict[str, Any], topic: str | None = None) -> None:
    """Send `payload` (JSON with a `type`) to every socket in `group` (that follows `topic`)."""
    publish_many([(group, payload, topic)])


def publish_many(messages: list[Message]) -> None:
    """Send many messages in one go on this thread's event loop (see _run).

    Each group gets one channel-layer message (`EVENTS`) with its events in order (at most
    EVENTS_PER_MESSAGE in each), every payload's JSON made once here, whatever the number of
    groups and sockets it goes to. An event is `[topic, type, subject, json]`: sockets
    coalesce by type and subject (`subject`). With
    `portal.channel_layer.LiveChannelLayer` (the settings' layer) they all go as one
    broadcast (`broadcast_many`: one Redis message for every group, up to a size); with
    another layer one group_send after the other, in order.
    """
    layer = get_channel_layer()
    if layer is None or not messages:
        return
    texts: dict[int, str] = {}  # id(payload) -> JSON: one payload often goes to two groups
    by_group: dict[str, list[list[str | None]]] = {}
    for group, payload, topic in messages:
        text = texts.get(id(payload))
        if text is None:
            text = texts[id(payload)] = orjson.dumps(payload).decode()
        by_group.setdefault(group, []).append([topic, str(payload.get("type")), subject(payload), text])
    events = [
        (group, {"type": EVENTS, "events": entries[start : start + EVENTS_PER_MESSAGE]})
        for group, entries in by_group.items()
        for start in range(0, len(entries), EVENTS_PER_MESSAGE)
    ]
    send_many = getattr(layer, "broadcast_many", None)

    async def send_all() -> None:
        if send_many is not None:
            await send_many(events)
            return
        for group, event in events:
            await layer.group_send(group, event)

    _run(send_all)


def subject(payload: dict[str, Any]) -> str | None:
    """What sockets coalesce an event by (at most one a second per type and subject, the newest
    winning): the object whose state it carries. An alarm's events are about the alarm (three
    alarms of one asset within a second all arrive), status and values about their asset;
    events about neither are never coalesced."""
    for key in ("alarm", "asset"):
        value = payload.get(key)
        if value is not None:
            return str(value)
    return None


def for_customer(customer_id: UUID | str, payload: dict[str, Any], topic: str | None = None) -> list[Message]:
    """The messages that tell a customer's sockets and staff about `payload` (those that
    follow `topic`, if given)."""
    return [(customer_group(customer_id), payload, topic), (STAFF_GROUP, payload, topic)]


def publish_for_customer(customer_id: UUID | str, payload: dict[str, Any], topic: str | None = None) -> None:
    """An event about one customer's data: to that customer's sockets and to staff."""
    publish_many(for_customer(customer_id, payload, topic))


def close_user_sockets(user_id: UUID | str) -> None:
    layer = get_channel_layer()
    if layer is not None:
        _run(lambda: layer.group_send(user_group(user_id), {"type": "live.close"}))


# topic -> resolver(user, object id) -> the topic key (e.g. `asset_topic(id)`), or None when the
# user may not see the object.
TopicResolver = Callable[[Any, str], str | None]
_topics: dict[str, TopicResolver] = {}


def register_topic(topic: str, resolver: TopicResolver) -> None:
    """Apps declare what a socket may subscribe to (fleet: "asset") from AppConfig.ready()."""
    _topics[topic] = resolver


def resolve_topic(user: Any, topic: str, object_id: str) -> str | None:
    resolver = _topics.get(topic)
    return resolver(user, object_id) if resolver is not None else None
