"""The domain events of `fleet`.

    from fleet import events
    events.record(events.AlarmRaised(alarm_id=str(alarm.pk)))           # in the transaction
    events.subscribe(events.AlarmRaised, tasks.on_alarm_raised)          # another app's ready()

Events are recorded inside the transaction of the change and handled by Celery tasks after
it commits (`portal.events`, `portal.outbox`); fleet never imports the apps that handle them.
Live messages are not events: they go out on commit, straight to the channel layer
(fleet/live.py).
docs/architecture.md lists every event and its handlers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Self

from portal.events import Event, record, subscribe, subscribers

__all__ = [
    "AlarmCleared",
    "AlarmRaised",
    "AssetStatusChanged",
    "record",
    "subscribe",
    "subscribers",
]


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
