"""Named domain events that `fleet` emits after commit; other apps subscribe in `ready()`.

    from fleet import events
    events.subscribe(events.ASSET_STATUS_CHANGED, handler)   # handler(**payload)

Handlers run in the process that committed (the ingest worker, mostly), after the commit,
so they see the rows. A failing handler is logged and does not stop the others.
docs/architecture.md lists every event and its handlers.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from portal import live

log = logging.getLogger(__name__)

ASSET_STATUS_CHANGED = "fleet.asset_status_changed"  # asset_ids: list[str]
ALARM_RAISED = "fleet.alarm_raised"  # alarm_id: str
ALARM_CLEARED = "fleet.alarm_cleared"  # alarm_id: str

Handler = Callable[..., None]
_handlers: dict[str, list[Handler]] = defaultdict(list)


def subscribe(name: str, handler: Handler) -> None:
    if handler not in _handlers[name]:
        _handlers[name].append(handler)


def emit(name: str, **payload: Any) -> None:
    for handler in list(_handlers[name]):
        try:
            handler(**payload)
        except Exception:
            log.exception("event %s: handler %r failed", name, handler)


def asset_status_changed(*, asset_ids: list[str]) -> None:
    """Assets whose state changed in a batch: one live message each, then the subscribers."""
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
    emit(ASSET_STATUS_CHANGED, asset_ids=list(set(asset_ids)))
