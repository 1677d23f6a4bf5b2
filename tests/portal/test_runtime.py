"""portal.runtime: the server processes' heap is set aside from garbage collection at start."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from portal import runtime


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settling_freezes_what_is_loaded_and_collects_young_objects_less_often(restored_gc: None) -> None:
    gc.unfreeze()
    kept = {"loaded": [1, 2]}
    assert any(o is kept for o in gc.get_objects())
    runtime.settle_heap()
    assert gc.get_freeze_count() > 0
    assert not any(o is kept for o in gc.get_objects())  # frozen: out of the collector's walks
    assert gc.get_threshold() == runtime.GC_THRESHOLDS
    assert runtime.GC_THRESHOLDS[0] > 700
    cycle: list[Any] = []
    cycle.append(cycle)  # made after: still collected
    del cycle
    assert gc.collect() >= 1


def test_the_asgi_lifespan_start_settles_the_heap_and_shutdown_completes(restored_gc: None) -> None:
    from portal.asgi import application

    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []
    frozen_at_start: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "lifespan.startup.complete":
            frozen_at_start.append(gc.get_freeze_count())

    async def scenario() -> None:
        await incoming.put({"type": "lifespan.startup"})
        await incoming.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(application({"type": "lifespan"}, incoming.get, send), timeout=10)

    asyncio.run(scenario())
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert len(frozen_at_start) == 1
    assert frozen_at_start[0] > 0
    assert gc.get_threshold() == runtime.GC_THRESHOLDS


def test_celery_pool_processes_settle_as_they_start(restored_gc: None) -> None:
    from celery.signals import worker_process_init

    from portal.celery import settle_pool_process

    gc.unfreeze()
    worker_process_init.send(sender=None)
    assert gc.get_freeze_count() > 0
    assert any(receiver() is settle_pool_process for _, receiver in worker_process_init.receivers)
