"""The live socket: session-authenticated, joins the groups the user's role allows.

Later issues publish `asset.*`, `alarm.*`, `ticket.*` and `usage.*` events to these groups;
this consumer only relays. Group names come from `portal.live` so publishers and the
consumer cannot disagree.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from portal import live
from portal.tenancy import customer_id_scope


class LiveConsumer(AsyncJsonWebsocketConsumer):
    groups_joined: list[str]

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.groups_joined = []
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
        await self.send_json({"type": "hello", "role": user.role, "groups": len(names)})

    async def disconnect(self, code: int) -> None:
        for name in self.groups_joined:
            await self.channel_layer.group_discard(name, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.send_json({"type": "error", "detail": "Unknown message type."})

    async def live_event(self, event: dict[str, Any]) -> None:
        """Relay an event a publisher sent with `portal.live.publish`."""
        await self.send_json(event["payload"])

    async def live_close(self, event: dict[str, Any]) -> None:
        """A logout or deactivation closes the user's sockets."""
        await self.close(code=4403)
