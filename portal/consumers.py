"""The live socket `/ws/live/`: session-authenticated, joins the groups the user's role allows.

On connect: customer users join their customer's group, provider staff the staff group, and
everyone their own user group (so a logout or deactivation can close their sockets). A
client may then subscribe to a topic (`{"type": "subscribe", "topic": "asset", "id": …}`);
the app that owns the topic checks access with the same scoped queryset its pages use, and a
foreign id is answered exactly like a missing one.

Events about one object (they carry `"asset": id`) are coalesced per socket: at most one per
(type, object) per second, the newest winning, however fast the object reports.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import orjson
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from portal import live
from portal.tenancy import customer_id_scope

COALESCE_SECONDS = 1.0
MAX_SUBSCRIPTIONS = 200


class LiveConsumer(AsyncJsonWebsocketConsumer):
    groups_joined: list[str]

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.groups_joined = []
        self.last_sent: dict[tuple[str, str], float] = {}
        self.pending: dict[tuple[str, str], dict[str, Any]] = {}
        self.outbox: deque[str] = deque()
        self.writer: asyncio.Future[None] | None = None
        scope = await database_sync_to_async(customer_id_scope)(user)
        if scope is False:
            await self.close(code=4401)
            return
        # Staff share one group that receives every customer's events (see live.publish_for_customer).
        names = [live.STAFF_GROUP] if scope is None else [live.customer_group(scope)]
        names.append(live.user_group(user.pk))
        for name in names:
            await self.channel_layer.group_add(name, self.channel_name)
        self.groups_joined = names
        await self.accept()
        await self.send_json({"type": "hello", "role": user.role})
        add_sink = getattr(self.channel_layer, "add_sink", None)
        if add_sink is not None:  # group events straight from the layer (portal.channel_layer)
            add_sink(self.channel_name, self.take)

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Relayed events skip Channels' per-message `aclose_old_connections()`.

        Channels runs `close_old_connections` through `sync_to_async` before every handler:
        a hop to the process's one thread for sync code (the thread Django's sync views run
        in) for each event and socket, so every frame of a fan-out queued behind the HTTP
        requests and the requests behind thousands of frames. `live_event` touches no
        database; the handlers that do (connect, subscribe) use `database_sync_to_async`,
        which closes old connections itself. Every other message keeps the default.
        """
        if message.get("type") == "live.event":
            await self.live_event(message)
        else:
            await super().dispatch(message)

    async def disconnect(self, code: int) -> None:
        remove_sink = getattr(self.channel_layer, "remove_sink", None)
        if remove_sink is not None:
            remove_sink(self.channel_name)
        for name in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(name, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "ping":
            await self.send_json({"type": "pong"})
        elif kind in ("subscribe", "unsubscribe"):
            await self._subscription(kind, content)
        else:
            await self.send_json({"type": "error", "detail": "Unknown message type."})

    async def _subscription(self, kind: str, content: dict[str, Any]) -> None:
        topic, object_id = str(content.get("topic", "")), str(content.get("id", ""))[:64]
        group = await database_sync_to_async(live.resolve_topic)(self.scope["user"], topic, object_id)
        if group is None:
            # Missing, foreign or unknown topic: one answer for all.
            await self.send_json({"type": "error", "detail": "Not found.", "topic": topic, "id": object_id})
            return
        if kind == "subscribe":
            if group not in self.groups_joined:
                if len(self.groups_joined) >= MAX_SUBSCRIPTIONS:
                    await self.send_json({"type": "error", "detail": "Too many subscriptions."})
                    return
                await self.channel_layer.group_add(group, self.channel_name)
                self.groups_joined.append(group)
            await self.send_json({"type": "subscribed", "topic": topic, "id": object_id})
        else:
            if group in self.groups_joined:
                await self.channel_layer.group_discard(group, self.channel_name)
                self.groups_joined.remove(group)
            await self.send_json({"type": "unsubscribed", "topic": topic, "id": object_id})

    async def live_event(self, event: dict[str, Any]) -> None:
        """A relayed event that came through the channel queue (a layer without sinks)."""
        self.take(event)

    def take(self, event: dict[str, Any]) -> bool:
        """Relay an event a publisher sent with `portal.live.publish`, coalescing per object.

        Called by the channel layer for every group message to this socket (True: taken), or
        by `live_event`. It only queues the frame; a writer task sends it.
        """
        if event.get("type") != "live.event":
            return False
        payload = event["payload"]
        subject = payload.get("asset")
        if subject is None:
            self._queue(event)
            return True
        key = (str(payload.get("type")), str(subject))
        now = time.monotonic()
        due = self.last_sent.get(key, 0.0) + COALESCE_SECONDS
        if now >= due and key not in self.pending:
            self.last_sent[key] = now
            self._queue(event)
            return True
        first = key not in self.pending
        self.pending[key] = event  # the newest wins
        if first:
            asyncio.get_running_loop().call_later(max(0.0, due - now), self._flush, key)
        return True

    def _flush(self, key: tuple[str, str]) -> None:
        event = self.pending.pop(key, None)
        if event is not None:
            self.last_sent[key] = time.monotonic()
            self._queue(event)

    def _queue(self, event: dict[str, Any]) -> None:
        """The event is shared with the process's other sockets that got it
        (portal.channel_layer): its JSON text is made once and kept on it."""
        text = event.get("json")
        if text is None:
            text = event["json"] = orjson.dumps(event["payload"]).decode()
        self.outbox.append(text)
        if self.writer is None:
            self.writer = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        try:
            while self.outbox:
                await self.send(text_data=self.outbox.popleft())
        except Exception:  # noqa: BLE001 - the socket went away; its disconnect cleans up
            self.outbox.clear()
        finally:
            self.writer = None

    async def live_close(self, event: dict[str, Any]) -> None:
        """A logout or deactivation closes the user's sockets."""
        await self.close(code=4403)
