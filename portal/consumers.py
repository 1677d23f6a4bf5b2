"""The live socket `/ws/live/`: session-authenticated, joins the groups the user's role allows.

On connect: customer users join their customer's group, provider staff the staff group, and
everyone their own user group (so a logout or deactivation can close their sockets). A
client may then subscribe to a topic (`{"type": "subscribe", "topic": "asset", "id": …}`);
the app that owns the topic checks access with the same scoped queryset its pages use, and a
foreign id is answered exactly like a missing one. A topic's events come on the groups the
socket is in already (portal.live.asset_topic); the socket keeps those of its topics.

Events about one object (an asset's status and values, an alarm's changes: portal.live.subject)
are coalesced per socket: at most one per (type, object) per second, the newest winning,
however fast the object reports.

A frame is one JSON message, or a JSON array of messages: the events that were ready for the
socket at the same moment (an ingest batch's changes reach a support agent's socket together).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.sessions import InstanceSessionWrapper
from redis.exceptions import ConnectionError as RedisConnectionError

from portal import live
from portal.tenancy import customer_id_scope

log = logging.getLogger(__name__)

COALESCE_SECONDS = 1.0
MAX_SUBSCRIPTIONS = 200
EVENTS_PER_FRAME = 256


class LiveConsumer(AsyncJsonWebsocketConsumer):
    groups_joined: list[str]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Channels subscribes the socket's own channel before `connect`; with Redis down that
        raises, which uvicorn answered with a 500. Refuse the handshake instead (the page's
        socket retries with backoff); an error after the socket was accepted is not ours."""
        try:
            await super().__call__(scope, receive, send)
        except RedisConnectionError:
            if getattr(self, "accepted", False):
                raise
            log.warning("live: Redis is unreachable, socket refused", exc_info=True)
            await send({"type": "websocket.close", "code": 1011})

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.groups_joined = []
        self.topics: set[str] = set()
        self.last_sent: dict[tuple[str, str], float] = {}
        self.pending: dict[tuple[str, str], str] = {}
        self.outbox: deque[str] = deque()
        self.writer: asyncio.Future[None] | None = None
        self.accepted = False
        scope = await database_sync_to_async(customer_id_scope)(user)
        if scope is False:
            await self.close(code=4401)
            return
        # Staff share one group that receives every customer's events (see live.publish_for_customer).
        names = [live.STAFF_GROUP] if scope is None else [live.customer_group(scope)]
        names.append(live.user_group(user.pk))
        try:
            await self._join(names)
        except RedisConnectionError:
            # Redis is down (a restart it comes back from is the layer's to handle): refuse
            # the handshake, which the page's socket retries with backoff, never a 500.
            log.warning("live: Redis is unreachable, socket refused", exc_info=True)
            await self.close()
            return
        await self.accept()
        await self.send_json({"type": "hello", "role": user.role})
        self.accepted = True
        if self.outbox:
            self._start_writer()

    async def _join(self, names: list[str]) -> None:
        add_sink = getattr(self.channel_layer, "add_sink", None)
        if add_sink is not None:
            # Group events straight from the layer (portal.channel_layer), before the socket
            # joins its groups: the sink also subscribes the process to the broadcasts that
            # carry them, so nothing sent after the joins is missed. What comes before the
            # hello waits in the outbox.
            await add_sink(self.channel_name, self.take)
        for name in names:
            self.groups_joined.append(name)  # before the join: a failed one is left on disconnect
            await self.channel_layer.group_add(name, self.channel_name)

    def _frame_send(self) -> Any:
        """The server's `send` for event frames, from under Channels' session wrapper.

        `InstanceSessionWrapper.send` looks at the session (is it modified, is it empty, through
        a lazy object) on every message it passes, to put a cookie on an HTTP response; a
        WebSocket frame never carries one, and under load those looks were ~5 % of the web
        process. Any other stack keeps `base_send`.
        """
        wrapper = getattr(self.base_send, "__self__", None)
        if isinstance(wrapper, InstanceSessionWrapper):
            return wrapper.real_send
        return self.base_send

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Relayed events skip Channels' per-message `aclose_old_connections()`.

        Channels runs `close_old_connections` through `sync_to_async` before every handler:
        a hop to the process's one thread for sync code (the thread Django's sync views run
        in) for each event and socket, so every frame of a fan-out queued behind the HTTP
        requests and the requests behind thousands of frames. `take` touches no
        database; the handlers that do (connect, subscribe) use `database_sync_to_async`,
        which closes old connections itself. Every other message keeps the default.
        """
        if message.get("type") == live.EVENTS:
            self.take(message)
        else:
            await super().dispatch(message)

    async def disconnect(self, code: int) -> None:
        remove_sink = getattr(self.channel_layer, "remove_sink", None)
        if remove_sink is not None:
            await remove_sink(self.channel_name)
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
        key = await database_sync_to_async(live.resolve_topic)(self.scope["user"], topic, object_id)
        if key is None:
            # Missing, foreign or unknown topic: one answer for all.
            await self.send_json({"type": "error", "detail": "Not found.", "topic": topic, "id": object_id})
            return
        if kind == "subscribe":
            if key not in self.topics and len(self.topics) >= MAX_SUBSCRIPTIONS:
                await self.send_json({"type": "error", "detail": "Too many subscriptions."})
                return
            self.topics.add(key)
            await self.send_json({"type": "subscribed", "topic": topic, "id": object_id})
        else:
            self.topics.discard(key)
            await self.send_json({"type": "unsubscribed", "topic": topic, "id": object_id})

    def take(self, message: dict[str, Any]) -> bool:
        """Relay the events a publisher sent with `portal.live.publish_many`: those without a
        topic and those of the socket's topics, coalescing per object.

        Called by the channel layer for every group message to this socket (True: taken), or
        by `dispatch` (a layer without sinks). The message is shared with the process's other
        sockets (read-only). It only queues the frames; a writer task sends them.
        """
        if message.get("type") != live.EVENTS:
            return False
        now = time.monotonic()
        for topic, kind, subject, text in message["events"]:
            if topic is not None and topic not in self.topics:
                continue
            if subject is None:
                self._queue(text)
                continue
            key = (kind, subject)
            due = self.last_sent.get(key, 0.0) + COALESCE_SECONDS
            if now >= due and key not in self.pending:
                self.last_sent[key] = now
                self._queue(text)
                continue
            first = key not in self.pending
            self.pending[key] = text  # the newest wins
            if first:
                asyncio.get_running_loop().call_later(max(0.0, due - now), self._flush, key)
        return True

    def _flush(self, key: tuple[str, str]) -> None:
        text = self.pending.pop(key, None)
        if text is not None:
            self.last_sent[key] = time.monotonic()
            self._queue(text)

    def _queue(self, text: str) -> None:
        self.outbox.append(text)
        if self.accepted:
            self._start_writer()

    def _start_writer(self) -> None:
        if self.writer is None:
            self.writer = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        """Send what is queued: one event as it is, several (up to EVENTS_PER_FRAME) as one
        JSON array: one frame, one write, one message for the browser to parse."""
        outbox, send = self.outbox, self._frame_send()
        try:
            while outbox:
                texts = [outbox.popleft() for _ in range(min(len(outbox), EVENTS_PER_FRAME))]
                text = texts[0] if len(texts) == 1 else "[" + ",".join(texts) + "]"
                await send({"type": "websocket.send", "text": text})
        except Exception:  # noqa: BLE001 - the socket went away; its disconnect cleans up
            self.outbox.clear()
        finally:
            self.writer = None

    async def live_close(self, event: dict[str, Any]) -> None:
        """A logout or deactivation closes the user's sockets."""
        await self.close(code=4403)
