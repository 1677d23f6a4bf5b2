"""The domain events of `fleet`, and the live messages of a changed asset.

    from fleet import events
    events.record(events.AlarmRaised(alarm_id=str(alarm.pk)))           # in the transaction
    events.subscribe(events.AlarmRaised, tasks.on_alarm_raised)          # another app's ready()

Events are recorded inside the transaction of the change and handled by Celery tasks after
it commits (`portal.events`, `portal.outbox`); fleet never imports the apps that handle them.
Live messages are not events: they go out on commit, straight to the channel layer.
docs/architecture.md lists every event and its handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Self

from portal import live
from portal.events import Event, record, subscribe, subscribers

__all__ = [
    "AlarmCleared",
    "AlarmRaised",
    "AssetStatusChanged",
    "asset_status_changed",
    "record",
    "subscribe",
    "subscribers",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlarmRaised(Event):
    alarm_id: str


@dataclass(frozen=True)
class AlarmCleared(Event):
    alarm_id: str


@dataclass(frozen=True)
class AssetStatusChanged(Event):
    """Assets whose state (status, last values, last seen) changed: once per asset per ingest
    batch, and from the offline sweep. Coalesced: handlers get the pending ones together."""

    asset_ids: tuple[str, ...]

    coalesce = True
    CHUNK = 1000  # asset ids per handler task

    def __init__(self, *, asset_ids: Iterable[str]) -> None:
        object.__setattr__(self, "asset_ids", tuple(sorted({str(pk) for pk in asset_ids})))

    @classmethod
    def merge(cls, events: list[Self]) -> list[Self]:
        ids = sorted({pk for event in events for pk in event.asset_ids})
        return [cls(asset_ids=ids[i : i + cls.CHUNK]) for i in range(0, len(ids), cls.CHUNK)]


def asset_status_changed(*, asset_ids: list[str]) -> None:
    """Live messages for assets whose state changed (after the commit): one `asset.status` and
    one `asset.values` each. Their domain event is `AssetStatusChanged`, recorded in the batch's
    transaction."""
    if not asset_ids:
        return
    from fleet.models import Asset

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
