"""Live messages of committed batches, coalesced under load (docs/architecture.md, "Live").

The worker hands each committed batch's changed assets to `live_publisher`; the messages
themselves are made by `fleet.live.publish_asset_states`.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from django.conf import settings
from django.db import DatabaseError

from fleet import live as fleet_live

log = logging.getLogger(__name__)


class LivePublisher:
    """Live messages of committed batches, coalesced under load.

    A batch hands over the assets it changed. When nothing is waiting and publishing is not
    pausing, a small batch's messages go out at once from the batch's own thread (at light
    load the shortest way to the browsers: no hop to another thread, which under load would
    have to win the interpreter lock from the storing thread for every Redis round trip).
    Otherwise they go to a thread of their own, which sends `fleet_live.publish_asset_states`
    for everything handed over since its last round: each asset once, with its state as
    committed by then (the function reads it), so a message per asset per batch at most.

    Rounds, here or in the thread, never overlap (so a later round never sends older state
    than an earlier one). Publishing may take INGEST_LIVE_PUBLISH_SHARE of the time, counted
    in CPU with a budget (a token bucket): it earns that share of each second passed, up to
    BURST seconds of CPU, and each round spends what it took. A round that overdraws it is
    followed by a pause until the budget is back at zero, during which everything goes to the
    thread: under overload (a backlog of thousands of devices) the browsers get fewer,
    fresher messages instead of the storing falling behind. A steady load within the share
    never pauses; a pause after every large round made publishing bursty (a pause, then a
    larger round, then a longer pause), which the sockets felt as seconds of lag.
    """

    BURST = 0.2  # seconds of CPU the budget can hold
    INLINE_MAX = 50  # assets a batch publishes itself when nothing waits

    def __init__(self) -> None:
        self._pending: dict[str, None] = {}  # insertion-ordered set of asset ids
        self._wake = threading.Condition()
        self._round = threading.Lock()  # held by whoever runs a round
        self._idle = threading.Event()  # set while no round is pending or running
        self._idle.set()
        self._pause_until = 0.0
        self._budget = self.BURST
        self._earned_at = time.monotonic()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def submit(self, asset_ids: list[str]) -> None:
        if not asset_ids:
            return
        if (
            len(asset_ids) <= self.INLINE_MAX
            and not self._pending
            and time.monotonic() >= self._pause_until
            and self._round.acquire(blocking=False)
        ):
            try:
                self._publish(asset_ids)
            finally:
                self._round.release()
            return
        with self._wake:
            self._pending.update(dict.fromkeys(asset_ids))
            self._idle.clear()
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                # First use in this process (a Celery pool child forks without the thread).
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="fleet-live-publisher", daemon=True)
                self._thread.start()
            self._wake.notify()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every submitted round has run (tests, before they flush the database)."""
        return self._idle.wait(timeout)

    def _publish(self, asset_ids: list[str]) -> None:
        """One round (the caller holds `_round`); then the pause it earned, if any."""
        from django.db import connections

        started = time.thread_time()  # CPU, not waiting: a new connection's set-up is not cost
        for attempt in (1, 2):
            try:
                fleet_live.publish_asset_states(asset_ids=asset_ids)
            except DatabaseError:
                # A round that met a broken connection (a database restart, a pool closed
                # under it) tries once more on a fresh one.
                if attempt == 2:
                    log.exception("live: publishing %d assets failed", len(asset_ids))
                connections["default"].close()
                continue
            except Exception:
                log.exception("live: publishing %d assets failed", len(asset_ids))
            break
        self._spend(time.thread_time() - started, time.monotonic())

    def _spend(self, cpu: float, now: float) -> None:
        """Take a round's CPU from the budget; overdrawn, pause until it is earned back."""
        share = min(1.0, max(0.01, settings.INGEST_LIVE_PUBLISH_SHARE))
        self._budget = min(self.BURST, self._budget + (now - self._earned_at) * share) - cpu
        self._earned_at = now
        if self._budget < 0:
            self._pause_until = now - self._budget / share

    def _run(self) -> None:
        from django.db import connections

        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
            time.sleep(max(0.0, self._pause_until - time.monotonic()))
            with self._round:
                with self._wake:
                    asset_ids, self._pending = list(self._pending), {}
                self._publish(asset_ids)
            connections["default"].close()  # this thread's connection, back to the pool
            with self._wake:
                if not self._pending:
                    self._idle.set()


live_publisher = LivePublisher()
