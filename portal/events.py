"""Domain events: small typed values recorded in the transaction that causes them, handled by
Celery tasks that other apps subscribe in `AppConfig.ready()`.

    @dataclass(frozen=True)
    class AlarmRaised(Event):                        # fleet/events.py
        alarm_id: str

    events.subscribe(AlarmRaised, tasks.on_alarm_raised)   # support/apps.py
    events.record(AlarmRaised(alarm_id=str(alarm.pk)))      # inside alarm_raise's transaction

`record` writes one outbox row per subscribed task (one INSERT, `portal.outbox`): the handlers
run in workers after the commit, never in the process that caused the event, and a failing
one is retried on its own (`HANDLER_TASK`). An app that emits events never imports the apps
that handle them. docs/architecture.md lists every event, who records it and who handles it.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any, ClassVar, Self

from celery.app.task import Task

from portal import outbox


@dataclasses.dataclass(frozen=True)
class Event:
    """Base of every domain event: ids and small values only (a task loads what it needs).

    An event class with `coalesce = True` reaches its handlers merged: the outbox publishes its
    pending events combined by `merge`, at most once a second per process, instead of one task
    per event."""

    coalesce: ClassVar[bool] = False

    def payload(self) -> dict[str, Any]:
        """The handler task's kwargs: the fields, tuples as JSON lists."""
        payload = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            payload[field.name] = list(value) if isinstance(value, tuple) else value
        return payload

    @classmethod
    def merge(cls, events: list[Self]) -> list[Self]:
        return events


# The options of every handler task: late acks (a worker that dies mid-handler leaves the
# message to another); any error retried, at most 8 times, the n-th after a random wait of up
# to 2·2ⁿ s (2 s, 4 s … 256 s: at most ~8.5 minutes in all); then Celery logs the failure and
# drops the message.
HANDLER_TASK: dict[str, Any] = {
    "acks_late": True,
    "autoretry_for": (Exception,),
    "retry_backoff": 2,
    "retry_backoff_max": 600,
    "retry_jitter": True,
    "max_retries": 8,
}

_subscribers: dict[type[Event], list[str]] = defaultdict(list)


def subscribe(event_type: type[Event], task: Task[Any, Any]) -> None:
    """Run `task(**event.payload())` after each recorded `event_type` commits. Idempotent."""
    if task.name in _subscribers[event_type]:
        return
    _subscribers[event_type].append(task.name)
    if event_type.coalesce:
        outbox.coalesce(task.name, _merger(event_type))


def subscribers(event_type: type[Event]) -> list[str]:
    return list(_subscribers.get(event_type, ()))


def record(event: Event) -> None:
    """Have the event's handlers run once the current transaction commits (one INSERT; none
    when nobody subscribed). Call it inside the transaction that makes the change."""
    names = _subscribers.get(type(event))
    if names:
        payload = event.payload()
        outbox.enqueue_many([(name, payload) for name in names])


def _merger(event_type: type[Event]) -> outbox.Merge:
    def merge(payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        merged = event_type.merge([event_type(**payload) for payload in payloads])
        return [event.payload() for event in merged]

    return merge
