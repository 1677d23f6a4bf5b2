"""Publishing to live sockets. Publishers call these after commit; consumers only relay."""

from __future__ import annotations

from collections.abc import Callable
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


def publish(group: str, payload: dict[str, Any]) -> None:
    """Send `payload` (JSON with a `type`) to every socket in `group`."""
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(group, {"type": "live.event", "payload": payload})


def publish_many(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Send many (group, payload) messages in one event loop: one channel-layer connection
    for a whole batch instead of one per message (several ms each through async_to_sync)."""
    layer = get_channel_layer()
    if layer is None or not messages:
        return

    async def send_all() -> None:
        for group, payload in messages:
            await layer.group_send(group, {"type": "live.event", "payload": payload})

    async_to_sync(send_all)()


def for_customer(customer_id: UUID | str, payload: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The messages that tell a customer's sockets and staff about `payload`."""
    return [(customer_group(customer_id), payload), (STAFF_GROUP, payload)]


def publish_for_customer(customer_id: UUID | str, payload: dict[str, Any]) -> None:
    """An event about one customer's data: to that customer's sockets and to staff."""
    publish_many(for_customer(customer_id, payload))


def close_user_sockets(user_id: UUID | str) -> None:
    layer = get_channel_layer()
    if layer is not None:
        async_to_sync(layer.group_send)(user_group(user_id), {"type": "live.close"})


# topic -> resolver(user, object id) -> group name, or None when the user may not see it.
TopicResolver = Callable[[Any, str], str | None]
_topics: dict[str, TopicResolver] = {}


def register_topic(topic: str, resolver: TopicResolver) -> None:
    """Apps declare what a socket may subscribe to (fleet: "asset") from AppConfig.ready()."""
    _topics[topic] = resolver


def resolve_topic(user: Any, topic: str, object_id: str) -> str | None:
    resolver = _topics.get(topic)
    return resolver(user, object_id) if resolver is not None else None
