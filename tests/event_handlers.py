"""Event handler tasks for the tests only: a worker started with `include="tests.event_handlers"`
knows them (tests/support/test_alarm_tasks.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import shared_task

from portal.events import HANDLER_TASK


@shared_task(name="tests.flaky_alarm_handler", bind=True, **HANDLER_TASK)
def flaky_alarm_handler(self: Any, alarm_id: str) -> None:
    """Fails the first time, then does what support's handler does."""
    from support import services

    if self.request.retries == 0:
        raise RuntimeError("the first attempt fails")
    services.on_alarm_raised(alarm_id=alarm_id)


@shared_task(name="tests.blocking_alarm_handler", **HANDLER_TASK)
def blocking_alarm_handler(alarm_id: str) -> None:
    """Says it started (a file `<alarm_id>.started` in TEST_HANDLER_DIR), then blocks until the
    test writes `<alarm_id>.release` (at most a minute)."""
    folder = Path(os.environ["TEST_HANDLER_DIR"])
    (folder / f"{alarm_id}.started").touch()
    deadline = time.monotonic() + 60
    while not (folder / f"{alarm_id}.release").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
