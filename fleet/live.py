"""The fleet on the live socket: the topics a socket may subscribe to (checked like the pages
check), and the messages of assets whose state changed."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

from django.db import transaction

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
    rows = (
        Asset.objects.filter(pk__in=set(asset_ids))
        .order_by()
        .values_list("id", "customer_id", "status", "last_seen_at", "last_values", "last_fault_code")
    )
    messages = asset_state_messages(rows)
    try:
        live.publish_many(messages)  # one connection for the whole batch
    except Exception:
        log.warning("live: could not publish %d messages", len(messages), exc_info=True)


AssetState = tuple[Any, Any, str, Any, Any, Any]  # id, customer id, status, last seen, values, fault


def asset_state_messages(rows: Iterable[AssetState]) -> list[live.Message]:
    """The `asset.status` and `asset.values` messages of assets in the state `rows` give."""
    messages: list[live.Message] = []
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
    return messages


def health_messages(changes: Iterable[tuple[Any, Any, int, str]]) -> list[live.Message]:
    """One `asset.health` per (customer id, asset id, score, risk) whose score or risk changed,
    for that customer's sockets and staff: the overview's health column follows it."""
    messages: list[live.Message] = []
    for customer_id, asset_id, score, risk in changes:
        payload = {"type": "asset.health", "asset": str(asset_id), "score": score, "risk": risk}
        messages += live.for_customer(customer_id, payload)
    return messages


def window_messages(customer_id: Any, window_id: Any) -> list[live.Message]:
    """One `maintenance.changed` for a window planned, proposed, moved, confirmed, cancelled or
    closed early, for its customer's sockets and staff: the id only (pages fetch what it
    covers again, so a site- or customer-wide window needs no asset list here)."""
    return live.for_customer(customer_id, {"type": "maintenance.changed", "window": str(window_id)})


def publish_after_commit(messages: list[live.Message]) -> None:
    """Publish `messages` once the current transaction commits (now, outside one); a failure to
    publish is logged, never raised: the data is committed, a reload shows it."""
    if not messages:
        return

    def send() -> None:
        try:
            live.publish_many(messages)
        except Exception:
            log.warning("live: could not publish %d messages", len(messages), exc_info=True)

    transaction.on_commit(send)
