"""The ingest worker: claim inbox rows, store them in one transaction per batch, hand the
changed assets to the live publisher after commit. docs/ingest.md, "The worker".

    ingest door ──commit──> IngestInbox row ──nudge──> Celery `fleet.ingest_drain` (queue ingest)
    drain: claim inbox rows (SKIP LOCKED) → lock their devices → store new heartbeats once per
           (device, seq) → fold counters into hourly usage → update device/asset state →
           delete the claimed rows — one transaction, so a killed worker leaves the rows for
           the next claim and nothing is stored twice.
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
from fleet.ingest.store import lock_devices, store
from fleet.models import FailedBatch, IngestInbox
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


def drain(
    *, max_rows: int | None = None, max_items: int | None = None, time_budget: float = 20.0
) -> BatchResult:
    """Process inbox batches until it is empty or the time budget is spent.

    Empty, it clears the nudge key and looks once more: a request that committed before the
    key was cleared is stored by this drain, one after it queues a task (see NUDGE_KEY).
    """
    total = BatchResult()
    deadline = time.monotonic() + time_budget
    cleared = False
    while True:
        result = process_batch(max_rows=max_rows, max_items=max_items)
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


def process_batch(*, max_rows: int | None = None, max_items: int | None = None) -> BatchResult:
    """Claim one batch of inbox rows and store it, all in one transaction.

    Up to INGEST_BATCH_MAX_ROWS rows or INGEST_BATCH_MAX_ITEMS heartbeats. Large batches
    are what make a backlog cheap to catch up on: a device's heartbeats in one batch share
    its state update, its rollup rows and its live message.

    A batch that fails is retried row by row; a row that fails on its own is moved to
    FailedBatch with its error (never dropped, never blocking the rows behind it).
    """
    max_rows = max_rows or settings.INGEST_BATCH_MAX_ROWS
    max_items = max_items or settings.INGEST_BATCH_MAX_ITEMS
    result = BatchResult()
    with transaction.atomic():
        claimed = _claim(max_rows, max_items)
        if not claimed:
            return result
        device_ids = {row.device_id for row in claimed}
        devices, busy = lock_devices(device_ids, wait=False)
        if busy and busy >= device_ids:
            # Every device is another batch's: wait for them (as a lone device's batches do),
            # rather than give up or come back to poll.
            devices, busy = lock_devices(device_ids, wait=True)
        # Rows of a device another worker holds stay in the inbox for a later batch: no
        # waiting on its lock when there is other work (batches of many devices overlap).
        claimed = [row for row in claimed if row.device_id not in busy]
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


def _claim(max_rows: int, max_items: int) -> list[InboxRow]:
    """Lock and read the oldest unclaimed inbox rows: up to `max_rows` rows, stopping at the
    row that brings the batch to `max_items` heartbeats.

    Through a server-side cursor, where FOR UPDATE SKIP LOCKED locks rows as they are
    fetched: a batch locks only (about) the rows it takes, and a second worker takes the
    next ones.
    """
    claimed: list[InboxRow] = []
    items = 0
    connection.ensure_connection()
    table = IngestInbox._meta.db_table
    with connection.connection.cursor(name="fleet_inbox_claim") as cursor:
        cursor.execute(
            f"SELECT id, device_id, received_at, count, items FROM {table} "  # noqa: S608 - our table
            "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
            [max_rows],
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
