"""`portal.asgi:application`, with one timestamp on the live path for bench/live.py.

    LIVE_TRACE_DIR=/tmp/x uvicorn _live_asgi:application --app-dir bench ...

The application is the project's own object; only `LiveConsumer.take` is wrapped, so
that each `asset.values` event a socket keeps (one per timed heartbeat: the one socket that
subscribed to the asset) appends the moment the consumer got it from the channel layer to
`$LIVE_TRACE_DIR/web-<pid>.jsonl`. That splits "published" → "frame received" into the channel
layer's part and the consumer + socket + client part. `asset.status` events (20 times as
many) are not traced, to keep the cost out of the measurement.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portal.asgi import application
from portal.consumers import LiveConsumer

TRACE_DIR = Path(os.environ["LIVE_TRACE_DIR"])
_files: dict[int, TextIO] = {}

__all__ = ["application"]


def trace(record: dict[str, Any]) -> None:
    pid = os.getpid()
    handle = _files.get(pid)
    if handle is None:
        handle = _files[pid] = (TRACE_DIR / f"web-{pid}.jsonl").open("a", buffering=1)
    handle.write(json.dumps(record) + "\n")


def traced_take(
    original: Callable[[LiveConsumer, dict[str, Any]], bool],
) -> Callable[[LiveConsumer, dict[str, Any]], bool]:
    @functools.wraps(original)
    def wrapper(self: LiveConsumer, message: dict[str, Any]) -> bool:
        for topic, kind, subject, text in message.get("events", ()):
            if kind == "asset.values" and topic in self.topics:
                values = json.loads(text).get("last_values") or {}
                trace({"at": time.time(), "asset": subject, "marker": values.get("temp_c")})
        return original(self, message)

    return wrapper


LiveConsumer.take = traced_take(LiveConsumer.take)  # type: ignore[method-assign,assignment]
