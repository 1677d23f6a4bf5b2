"""`portal.asgi:application`, with one timestamp on the live path for bench/live.py.

    LIVE_TRACE_DIR=/tmp/x uvicorn _live_asgi:application --app-dir bench ...

The application is the project's own object; only the channel layer's receiving step
(`LiveChannelLayer.receive_message`) is wrapped, so that each `asset.values` event arriving
for a customer's group (one per timed heartbeat; in a broadcast or a group message) appends
the moment the web process took it from Redis, before handing it to its sockets, to
`$LIVE_TRACE_DIR/web-<pid>.jsonl`. That splits "published" → "frame received" into the
channel layer's part and the consumers + sockets + client part. Once per event and process,
not per socket, to keep the cost out of the measurement; `asset.status` events are not
traced.

For `bench/live.py --cprofile`: SIGUSR1 starts cProfile on the event loop's thread, SIGUSR2
stops it and writes `$LIVE_TRACE_DIR/web-<pid>.prof` (pstats).
"""

from __future__ import annotations

import cProfile
import functools
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portal.asgi import application
from portal.channel_layer import BROADCAST, LiveChannelLayer

TRACE_DIR = Path(os.environ["LIVE_TRACE_DIR"])
_files: dict[int, TextIO] = {}

__all__ = ["application"]


def trace(record: dict[str, Any]) -> None:
    pid = os.getpid()
    handle = _files.get(pid)
    if handle is None:
        handle = _files[pid] = (TRACE_DIR / f"web-{pid}.jsonl").open("a", buffering=1)
    handle.write(json.dumps(record) + "\n")


Receive = Callable[[LiveChannelLayer, Any, dict[str, Any] | None], None]


def traced_receive(original: Receive) -> Receive:
    @functools.wraps(original)
    def wrapper(self: LiveChannelLayer, layer: Any, message: dict[str, Any] | None) -> None:
        if message is not None:
            at = time.time()
            name = message["channel"]
            name = name.decode() if isinstance(name, bytes) else str(name)
            decoded = self.deserialize(message["data"])
            # A broadcast (portal.channel_layer) carries many groups' messages, a group
            # message one group's.
            groups = decoded.get("groups", ()) if decoded.get("type") == BROADCAST else [(name, decoded)]
            for group, each in groups:
                if "customer." not in group:
                    continue
                for _, kind, subject, text in each.get("events", ()):
                    if kind == "asset.values":
                        values = json.loads(text).get("last_values") or {}
                        trace({"at": at, "asset": subject, "marker": values.get("temp_c")})
        original(self, layer, message)

    return wrapper


LiveChannelLayer.receive_message = traced_receive(LiveChannelLayer.receive_message)  # type: ignore[method-assign,assignment]


_profiler = cProfile.Profile()


def _profile_start(signum: int, frame: Any) -> None:
    _profiler.enable()


def _profile_stop(signum: int, frame: Any) -> None:
    _profiler.disable()
    _profiler.dump_stats(str(TRACE_DIR / f"web-{os.getpid()}.prof"))


signal.signal(signal.SIGUSR1, _profile_start)
signal.signal(signal.SIGUSR2, _profile_stop)
