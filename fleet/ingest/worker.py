"""The ingest worker: claim inbox rows, store them in one transaction per batch, hand the
changed assets to the live publisher after commit. docs/ingest.md, "The worker".

    ingest door ──commit──> IngestInbox row ──nudge──> Celery `fleet.ingest_drain` (queue ingest)
    drain: lock devices with waiting rows that no other drain holds (SKIP LOCKED) → claim
           their inbox rows → store new heartbeats once per (device, seq) → fold counters
           into hourly usage → update device/asset state → delete the claimed rows — one
           transaction, so a killed worker leaves the rows for the next claim and nothing is
           stored twice; two drains take disjoint devices and never wait on each other.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, transaction

from fleet import events
from fleet.ingest.admission import nudge_clear
from fleet.ingest.publisher import live_publisher
from fleet.ingest.state import model_rules
from fleet.ingest.store import free_devices, store
from fleet.models import Device, FailedBatch, IngestInbox
from fleet.sql import binding_cursor

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    failed_rows: int = 0
    changed_assets: list[str] = field(default_factory=list)


@dataclass
class InboxRow:
    """A claimed inbox row: what `store` needs of it, without a model instance."""

    pk: int
    device_id: str
    received_at: datetime
    items: list[dict[str, Any]]


# Devices per batch: a drain leaves the others to a drain running beside it, and a batch's
# transaction stays short (docs/ingest.md, "Parallel drains").
MAX_DEVICES = 250
# Inbox rows read per look for devices with waiting rows, and how many looks a batch takes
# when every device in them is another drain's.
WINDOW_ROWS = 5000
WINDOWS = 4


def drain(
    *,
    max_rows: int | None = None,
    max_items: int | None = None,
    max_devices: int = MAX_DEVICES,
    time_budget: float = 20.0,
) -> BatchResult:
    """Process inbox batches until it is empty or the time budget is spent.

    Empty, it clears the nudge key and looks once more: a request that committed before the
    key was cleared is stored by this drain, one after it queues a task (see NUDGE_KEY).
    """
    total = BatchResult()
    deadline = time.monotonic() + time_budget
    cleared = False
    while True:
        result = process_batch(max_rows=max_rows, max_items=max_items, max_devices=max_devices)
        if result.rows == 0:
            if cleared:
                break
            nudge_clear()  # then always one more look, whatever the budget says
            cleared = True
            continue
        cleared = False
        total.rows += result.rows
        total.stored += result.stored
        total.duplicates += result.duplicates
        total.failed_rows += result.failed_rows
        if time.monotonic() >= deadline:
            break  # rows may be left: the task hands over to a new one
    return total


def process_batch(
    *, max_rows: int | None = None, max_items: int | None = None, max_devices: int = MAX_DEVICES
) -> BatchResult:
    """Lock up to `max_devices` devices with waiting inbox rows, claim their rows and store
    them, all in one transaction.

    Up to INGEST_BATCH_MAX_ROWS rows or INGEST_BATCH_MAX_ITEMS heartbeats. Large batches
    are what make a backlog cheap to catch up on: a device's heartbeats in one batch share
    its state update, its rollup rows and its live message.

    Devices first, then their rows: a device another drain holds is skipped, never waited
    for, so drains running side by side take disjoint devices and a device's rows are only
    ever claimed by the drain holding it, oldest first.

    A batch that fails is retried row by row; a row that fails on its own is moved to
    FailedBatch with its error (never dropped, never blocking the rows behind it).
    """
    max_rows = max_rows or settings.INGEST_BATCH_MAX_ROWS
    max_items = max_items or settings.INGEST_BATCH_MAX_ITEMS
    result = BatchResult()
    with transaction.atomic():
        devices, orphans = _lock_waiting_devices(max_devices)
        if not devices and not orphans:
            return result
        claimed = _claim([str(d.pk) for d in devices] + sorted(orphans), max_rows, max_items)
        if not claimed:
            return result
        result.rows = len(claimed)
        try:
            with transaction.atomic():
                store(claimed, result, devices)
        except Exception:
            log.exception("ingest: a batch of %d rows failed; retrying row by row", len(claimed))
            model_rules.clear()  # the retries read the models again: a rule deleted elsewhere may be why
            result.stored = result.duplicates = 0
            result.changed_assets = []
            for row in claimed:
                try:
                    with transaction.atomic():
                        store([row], result)  # devices read again: the failed try changed them
                except Exception as exc:
                    log.exception("ingest: inbox row %s set aside", row.pk)
                    FailedBatch.objects.create(
                        device_id=row.device_id,
                        received_at=row.received_at,
                        items=row.items,
                        error=f"{type(exc).__name__}: {exc}"[:5000],
                    )
                    result.failed_rows += 1
        _delete_claimed([row.pk for row in claimed])
        changed = list(result.changed_assets)
        if changed:
            # The domain event commits with the batch (an outbox row: its handlers run in
            # tasks, never here); the live messages are the fast path, after the commit.
            events.record(events.AssetStatusChanged(asset_ids=changed))
        transaction.on_commit(lambda: live_publisher.submit(changed))
    return result


def _lock_waiting_devices(limit: int) -> tuple[list[Device], set[str]]:
    """Lock up to `limit` devices that have inbox rows waiting and that no other drain holds,
    those of the oldest rows first; and the ids of waiting rows' devices that no longer exist.

    Looks at the oldest WINDOW_ROWS rows' devices, and on at the next rows while every one of
    them is another drain's (at most WINDOWS looks: that drain goes on with the rest).
    """
    table = IngestInbox._meta.db_table
    after = 0
    for _ in range(WINDOWS):
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, device_id::text FROM {table} WHERE id > %s ORDER BY id LIMIT %s",  # noqa: S608
                [after, WINDOW_ROWS],
            )
            window = cursor.fetchall()
        if not window:
            return [], set()
        candidates = list(dict.fromkeys(device_id for _, device_id in window))
        # Of the candidates tried (up to the last one locked), those not locked are another
        # drain's, or have no device row any more (orphans).
        devices, orphans = free_devices(candidates, limit)
        if devices or orphans or len(window) < WINDOW_ROWS:
            return devices, orphans
        after = window[-1][0]
    return [], set()


def _claim(device_ids: list[str], max_rows: int, max_items: int) -> list[InboxRow]:
    """Lock and read the oldest inbox rows of `device_ids` (devices this batch holds): up to
    `max_rows` rows, stopping at the row that brings the batch to `max_items` heartbeats.

    Through a server-side cursor, where FOR UPDATE locks rows as they are fetched: a batch
    locks only (about) the rows it takes. SKIP LOCKED, so a claim never waits, though no
    other drain claims rows of a device it does not hold.
    """
    claimed: list[InboxRow] = []
    items = 0
    connection.ensure_connection()
    table = IngestInbox._meta.db_table
    with connection.connection.cursor(name="fleet_inbox_claim") as cursor:
        cursor.execute(
            f"SELECT id, device_id, received_at, count, items FROM {table} "  # noqa: S608 - our table
            "WHERE device_id = ANY(%s::uuid[]) ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
            [device_ids, max_rows],
        )
        size = 10
        while items < max_items:
            fetched = cursor.fetchmany(size)
            if not fetched:
                break
            for pk, device_id, received_at, count, body in fetched:
                items_ = _json_loads(body) if isinstance(body, str) else body
                claimed.append(InboxRow(pk, str(device_id), received_at, items_))
                items += count
                if items >= max_items:
                    break
            if len(fetched) < size:
                break  # the cursor is at its end: no round trip to be told so
            # Fetch about as many rows as the remaining heartbeats need at the rows' average size.
            size = max(1, min(500, math.ceil((max_items - items) * len(claimed) / max(items, 1))))
    return claimed


_json_loads = orjson.loads  # the inbox holds what json.dumps wrote: plain JSON


def _delete_claimed(pks: list[int]) -> None:
    """The batch's inbox rows are done (stored or set aside): one DELETE."""
    with binding_cursor() as cursor:  # no ORM deletion collector for a table nothing refers to
        cursor.execute(f"DELETE FROM {IngestInbox._meta.db_table} WHERE id = ANY(%b)", [pks])  # noqa: S608
