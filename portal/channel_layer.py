"""The channel layer: channels_redis's pub/sub layer, with many group messages in one round trip.

`RedisPubSubChannelLayer.group_send` is one PUBLISH and one round trip per message, one at a
time per Redis connection. A worker's batch publishes a message per group it has events for
(portal.live.publish_many: a customer's, staff); sent one by one from a thread that shares
the interpreter with the storing thread, each round trip waited for the lock again (up to the
5-ms switch interval). `group_send_many` sends them as one pipeline per shard: the same
PUBLISH commands, in the same order, on the layer's own connection.

Broadcasts: `broadcast_many` sends many (group, message) pairs as one Redis message on one
channel (`BROADCAST_GROUP`) that every process with a sink subscribes to; each process hands
each message to its own members of that group, exactly as if it had been sent to the group.
A publish round of an ingest batch touches a group per customer: one PUBLISH and one
message to receive and decode per process, instead of one per group.

Sinks: a consumer may register a callable for its channel (`add_sink`); the layer's receiving
task then hands it each group message directly instead of queueing it for the consumer's
receive loop. A process's consumers in one group get the same message: `_deliver` decodes it
once for all of them (`deserialize` also remembers the last two messages, for a caller that
decodes one before the layer does; no more: kept messages are objects every full garbage
collection walks), so what a consumer receives is shared with the other consumers of the
process and must be treated as read-only.

Reconnecting (`LiveShard`): a connection that Redis closed (a restart) is found dead only when
it is next used, and redis-py raises that first error to the caller. A socket's first
subscription after a restart failed its handshake (a 500) whenever no socket had kept the
process's pub/sub connection reading across the restart; the first publish was lost. Now a
subscription that meets a dead connection starts the shard over (receiving task stopped, a
fresh connection, every channel of the process subscribed again, since a restarted Redis
knows none) and is made again; the first subscription of a process with no socket starts
over at once; a publish is made again on a fresh connection. Redis still down is an error at
once (a refused connect is immediate), and the next subscription tries again.

It reaches into channels_redis's per-loop layer (`_get_layer`, `_get_group_channel_name`,
`_get_shard`, `_shards`) and its shard (`_lock`, `_ensure_redis`, `_ensure_receiver`, `_redis`,
`_pubsub`, `_subscribed_to`, `_receive_task`), pinned in
requirements/lock.txt; tests/portal/test_live_socket.py sends through it to real consumers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from typing import Any

from channels_redis.pubsub import RedisPubSubChannelLayer, RedisSingleShardConnection
from redis.exceptions import ConnectionError as RedisConnectionError

log = logging.getLogger(__name__)


Sink = Callable[[dict[str, Any]], bool]

BROADCAST_GROUP = "live.broadcast"
BROADCAST = "live.broadcast"  # the message type on it: {"groups": [[group, message], ...]}
BROADCAST_MAX = 1024  # events (or messages) per broadcast message


class LiveShard(RedisSingleShardConnection):
    """channels_redis's connection to one Redis (pub/sub and publishing), made whole again after
    that Redis restarts (module docstring). `receive` is the layer's `receive_message`."""

    def __init__(self, host: Any, layer: Any, receive: Callable[[dict[str, Any] | None], None]) -> None:
        super().__init__(host, layer)
        self._receive_message = receive
        self.stale = False  # a reconnect failed: the next subscription starts over first

    async def publish(self, channel: str, message: bytes) -> None:
        try:
            await super().publish(channel, message)
        except RedisConnectionError:
            # redis-py dropped the dead connection: this takes a fresh one. (A publish that
            # went out before the connection died goes twice; live events are states.)
            await super().publish(channel, message)

    async def subscribe(self, channel: str) -> None:
        if self.stale or not self._subscribed_to:
            # With no subscription nothing has read the connection since the last one went:
            # it may be one Redis closed (a restart) unnoticed. The first subscription of an
            # idle process (no socket) takes a fresh one instead of finding out.
            await self.reconnect(only_if_idle=True)
        try:
            await super().subscribe(channel)
        except Exception:  # noqa: BLE001 - any failure: a fresh connection, and once more
            # A dead connection raises ConnectionError, or whatever its half-closed socket
            # raises when the receiving task is reconnecting it at that very moment (seen:
            # AttributeError on its writer). Either way the shard starts over.
            await self.reconnect()
            await super().subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        try:
            await super().unsubscribe(channel)
        except RedisConnectionError:
            # Nothing to tell a Redis we lost: forget the channel, start over next time.
            self._subscribed_to.discard(channel)
            self.stale = True

    async def reconnect(self, *, only_if_idle: bool = False) -> None:
        """A fresh connection subscribed to every channel this process subscribed to.

        Under the shard's lock with the receiving task stopped: the dead connection's last
        reader and the new one's handshake must not share a socket. Raises (and stays `stale`)
        while Redis is down."""
        shard: Any = self  # channels_redis is untyped
        async with shard._lock:
            if only_if_idle and not self.stale and shard._subscribed_to:
                return  # another socket subscribed meanwhile, on a fresh connection
            self.stale = True
            task, shard._receive_task = shard._receive_task, None
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if shard._redis is not None:
                # Its connections are dead already: closing them may only wait (up to the
                # socket timeout) for a peer that is gone.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(shard._redis.aclose(close_connection_pool=True), 1.0)
            shard._redis = shard._pubsub = None
            shard._ensure_redis()
            shard._ensure_receiver()
            if shard._subscribed_to:
                await shard._pubsub.subscribe(*shard._subscribed_to)
            self.stale = False
            if shard._subscribed_to:
                count = len(shard._subscribed_to)
                log.warning("live: reconnected to Redis, %d channels subscribed again", count)


class LiveChannelLayer(RedisPubSubChannelLayer):
    DECODED_KEPT = 2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._decoded: OrderedDict[bytes, Any] = OrderedDict()
        self._sinks: dict[str, Sink] = {}

    async def add_sink(self, channel: str, sink: Sink) -> None:
        """Hand group messages for `channel` to `sink` as they arrive, in the receiving task,
        instead of queueing them for the consumer's receive loop (a queue, a task and an
        `asyncio.wait` per message and socket). The sink returns False for a message it does
        not take, which then goes to the queue as before. The channel joins the broadcast
        group, so the process receives broadcasts (delivered by group, never to all members)."""
        self._sinks[channel] = sink
        await self.group_add(BROADCAST_GROUP, channel)

    async def remove_sink(self, channel: str) -> None:
        self._sinks.pop(channel, None)
        await self.group_discard(BROADCAST_GROUP, channel)

    def _get_layer(self) -> Any:
        layer = super()._get_layer()
        if not isinstance(layer._shards[0], LiveShard):  # a new loop's layer: no connection yet
            receive = functools.partial(self.receive_message, layer)
            layer._shards = [LiveShard(shard.host, layer, receive) for shard in layer._shards]
        return layer

    def receive_message(self, layer: Any, message: dict[str, Any] | None) -> None:
        """channels_redis's shard `_receive_message`, with sinks and broadcasts."""
        if message is None:
            return
        name, data = message["channel"], message["data"]
        if isinstance(name, bytes):
            name = name.decode()
        if name in layer.channels:
            layer.channels[name].put_nowait(data)
            return
        if name == layer._get_group_channel_name(BROADCAST_GROUP):
            # Never to the broadcast group's members (every socket of the process, whatever
            # its customer): only each inner group's message to that group's members.
            broadcast = self.deserialize(data)
            if broadcast.get("type") != BROADCAST:
                log.error("live: dropped a message on the broadcast channel that is no broadcast")
                return
            for group, each in broadcast["groups"]:
                if group != BROADCAST_GROUP:
                    self._deliver(layer, layer._get_group_channel_name(group), each, None)
            return
        self._deliver(layer, name, None, data)

    def _deliver(self, layer: Any, name: str, decoded: dict[str, Any] | None, data: bytes | None) -> None:
        """A group message to the process's members of the group: their sinks, else their queues."""
        for channel in layer.groups.get(name, ()):
            if channel not in layer.channels:  # its consumer is gone: forget its sink too
                self._sinks.pop(channel, None)
                continue
            sink = self._sinks.get(channel)
            if sink is not None:
                if decoded is None:
                    assert data is not None  # one of the two is given
                    decoded = self.deserialize(data)
                try:
                    if sink(decoded):
                        continue
                except Exception:
                    log.exception("live: a socket's sink failed")
                    continue
            if data is None:
                data = self.serialize(decoded)
            layer.channels[channel].put_nowait(data)

    def deserialize(self, message: bytes) -> Any:
        """Decode a message once (the last DECODED_KEPT are kept: a wrapper that looks into a
        message before the layer does decodes it for both)."""
        decoded = self._decoded.get(message)
        if decoded is None:
            decoded = self._decoded[message] = super().deserialize(message)
            if len(self._decoded) > self.DECODED_KEPT:
                self._decoded.popitem(last=False)
        return decoded

    async def group_send_many(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        """Send each (group, message), in order, pipelined: one round trip per shard."""
        layer = self._get_layer()
        by_shard: dict[Any, list[tuple[str, bytes]]] = defaultdict(list)
        for group, message in messages:
            channel = layer._get_group_channel_name(group)
            by_shard[layer._get_shard(channel)].append((channel, self.serialize(message)))
        for shard, items in by_shard.items():
            async with shard._lock:
                shard._ensure_redis()
                for attempt in (1, 2):  # the second on a fresh connection, as LiveShard.publish
                    pipe = shard._redis.pipeline(transaction=False)
                    for channel, data in items:
                        pipe.publish(channel, data)
                    try:
                        await pipe.execute()
                    except RedisConnectionError:
                        if attempt == 2:
                            raise
                    else:
                        break

    async def broadcast_many(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        """Send each (group, message), in order, as few broadcast messages (BROADCAST_MAX events
        each, a message without `events` counting one): every process delivers them to its
        members of each group, like `group_send`."""
        chunks: list[list[tuple[str, dict[str, Any]]]] = [[]]
        size = 0
        for group, message in messages:
            weight = len(message.get("events", ())) or 1
            if chunks[-1] and size + weight > BROADCAST_MAX:
                chunks.append([])
                size = 0
            chunks[-1].append((group, message))
            size += weight
        await self.group_send_many(
            [(BROADCAST_GROUP, {"type": BROADCAST, "groups": chunk}) for chunk in chunks if chunk]
        )
