"""Run what the outbox holds in the test's own process, as a worker would: for tests that check
a task's or an event handler's effect without a Celery worker (their rows are uncommitted)."""

from __future__ import annotations

import pytest

from portal import outbox
from portal.celery import app
from portal.models import OutboxMessage


def hold_outbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep committed rows in the outbox (no publishing on commit), for `run_outbox`."""
    monkeypatch.setattr(outbox, "_publish_after_commit", lambda ids: None)
    monkeypatch.setattr(outbox._coalescer, "poke", lambda: None)


def run_outbox(*, rounds: int = 20) -> list[str]:
    """Run the pending rows' tasks (merged as the relay merges them) until none are left (a task
    may enqueue more); returns the task names in the order they ran. A failing task raises."""
    ran: list[str] = []
    for _round in range(rounds):
        rows = list(OutboxMessage.objects.order_by("pk"))
        if not rows:
            return ran
        OutboxMessage.objects.filter(pk__in=[row.pk for row in rows]).delete()
        for task, kwargs in outbox.messages_of(rows):
            app.tasks[task].apply(kwargs=kwargs, throw=True)
            ran.append(task)
    raise AssertionError(f"the outbox still holds rows after {rounds} rounds")
