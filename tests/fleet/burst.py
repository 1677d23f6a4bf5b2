"""A burst of heartbeats sent from a thread while a test breaks something under it."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from tests.integration import post_ingest


def send_burst(
    base: str,
    token: str,
    chunks: Sequence[list[dict[str, Any]]],
    *,
    pause: float,
    codes: list[int],
    accepted: list[dict[str, Any]],
) -> threading.Thread:
    """Start a thread that posts `chunks` to the ingest endpoint one after another, `pause`
    seconds apart, noting every answer's code in `codes` and every acknowledged (202) heartbeat
    in `accepted`, as it goes: the test reads both while the burst runs."""

    def burst() -> None:
        for chunk in chunks:
            code = post_ingest(base, token, chunk)
            codes.append(code)
            if code == 202:
                accepted.extend(chunk)
            time.sleep(pause)

    sender = threading.Thread(target=burst)
    sender.start()
    return sender
