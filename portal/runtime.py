"""Process-level tuning of the long-running server processes (uvicorn, Celery workers).

Python's cyclic garbage collector stops the process for every collection, and a full one
walks every tracked object. A web process holding 1,000 live sockets has ~280,000 of them
(~100,000 of which are Django, the project and its libraries, loaded once at start), and
under load its full collections ran every ~4.5 s for ~200 ms of CPU each: every request and
frame in flight waited (bench/live.py, docs/performance.md "Live"). They found nothing to free:
what pushed objects into the oldest generation was requests and frames that happened to be in
flight at a young collection, dead soon after.

`settle_heap()`, called once the process has loaded what it keeps (the web process: at the
ASGI lifespan startup, `lifespan` below; a Celery pool process: as it starts): a collection, then
everything still alive moves to the permanent generation that collections never walk
(gc.freeze; for a forking server also what keeps pages shared with the children), and young
collections run after GC_THRESHOLDS[0] net new container objects instead of 700, so fewer of
them catch short-lived objects in flight and promote them. Cycles are still collected.
"""

from __future__ import annotations

import gc
from typing import Any

GC_THRESHOLDS = (7000, 10, 10)  # (young, middle, old); CPython's default is (700, 10, 10)


def settle_heap() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI lifespan protocol: the server started (every import done, no request yet)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            settle_heap()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
