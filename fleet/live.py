"""The fleet on the live socket: the topics a socket may subscribe to (checked like the pages
check), and the messages of assets whose state changed."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from fleet.models import Asset
from portal import live
from portal.roles import Capability, can
from portal.validation import is_uuid

log = logging.getLogger(__name__)


def resolve_asset_topic(user: Any, object_id: str) -> str | None:
    if (
        not is_uuid(object_id)
        or not can(user, Capability.VIEW_FLEET)
        or not Asset.objects.visible_to(user).filter(pk=object_id).exists()
    ):
        return None
    return live.asset_topic(uuid.UUID(object_id))  # one spelling: the publisher's


def publish_asset_states(*, asset_ids: list[str]) -> None:
    """Live messages for assets whose state changed (after the commit): one `asset.status` and
    one `asset.values` each. Their domain event is `AssetStatusChanged`, recorded in the batch's
    transaction."""
    if not asset_ids:
        return
    messages: list[live.Message] = []
    rows = (
        Asset.objects.filter(pk__in=set(asset_ids))
        .order_by()
        .values_list("id", "customer_id", "status", "last_seen_at", "last_values", "last_fault_code")
    )
    for asset_id, customer_id, status, last_seen_at, last_values, fault_code in rows:
        message = {
            "type": "asset.status",
            "asset": str(asset_id),
            "status": status,
            "last_seen_at": last_seen_at.isoformat() if last_seen_at else None,
            "last_values": last_values,
            "fault_code": fault_code,
        }
        # The overview (customer and staff groups) gets status; an asset page that
        # subscribed gets the values too. Sockets coalesce both per asset per second.
        messages += live.for_customer(customer_id, message)
        values = {**message, "type": "asset.values"}
        messages += live.for_customer(customer_id, values, topic=live.asset_topic(asset_id))
    try:
        live.publish_many(messages)  # one connection for the whole batch
    except Exception:
        log.warning("live: could not publish %d messages", len(messages), exc_info=True)
