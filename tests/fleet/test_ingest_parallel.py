"""Two drains side by side (docs/ingest.md, "Parallel drains"): each on its own database
connection, over inbox rows of the same devices. They take disjoint devices, neither waits
on the other, and every heartbeat is stored once, each device's in order."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from fleet.ingest import store, worker
from fleet.models import AssetModel, FailedBatch, Heartbeat, HourlyUsage, IngestInbox
from portal.models import Customer
from tests.fleet_fixtures import install

pytestmark = pytest.mark.django_db(transaction=True)  # each drain has its own connection

NOW = timezone.now().replace(microsecond=0)
DEVICES, ROWS = 6, 4  # rows per device, interleaved: every stretch of the inbox has every device


def _item(seq: int) -> dict[str, Any]:
    ts = (NOW - timedelta(minutes=ROWS - seq)).astimezone(UTC)
    return {"seq": seq, "ts": ts.isoformat(), "status": "ok", "fault_code": "",
            "metrics": {"temp_c": 60.0, "run_hours": 100 + seq / 100}}  # fmt: skip


def test_two_drains_take_disjoint_devices_and_neither_waits(
    customer_a: Customer, compressor: AssetModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = [install(customer_a, compressor, f"P-{n:02d}") for n in range(DEVICES)]
    for seq in range(ROWS):
        for installed in fleet:
            IngestInbox.objects.create(device_id=installed.device.pk, count=1, items=[_item(seq)])

    inside, finish = threading.Event(), threading.Event()
    stored_by: dict[str, set[str]] = {}
    real_store = store.store

    def held_store(rows: list[worker.InboxRow], result: worker.BatchResult, locked: Any = None) -> None:
        name = threading.current_thread().name
        stored_by.setdefault(name, set()).update(row.device_id for row in rows)
        real_store(rows, result, locked)
        if name == "first":  # the first drain holds its devices until the second is done
            inside.set()
            assert finish.wait(30)

    monkeypatch.setattr(worker, "store", held_store)
    results: dict[str, worker.BatchResult] = {}
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            with connection.cursor() as cursor:  # waiting on the other drain's lock is an error
                cursor.execute("SET lock_timeout = '2s'")
            results[name] = worker.process_batch(max_devices=DEVICES // 2)
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            inside.set()
        finally:
            connection.close()

    first = threading.Thread(target=run, args=("first",), name="first")
    first.start()
    assert inside.wait(30)
    second = threading.Thread(target=run, args=("second",), name="second")
    second.start()
    second.join(30)
    finish.set()
    first.join(30)
    assert not errors, errors
    # The second stored its half while the first still held its own: side by side, not in turn.
    assert results["first"].rows == results["second"].rows == DEVICES // 2 * ROWS
    assert results["first"].stored == results["second"].stored == DEVICES // 2 * ROWS
    assert len(stored_by["first"]) == len(stored_by["second"]) == DEVICES // 2
    assert not stored_by["first"] & stored_by["second"]

    assert not IngestInbox.objects.exists()
    assert not FailedBatch.objects.exists()
    pairs = Counter(Heartbeat.objects.values_list("device_id", "seq"))
    assert len(pairs) == DEVICES * ROWS
    assert set(pairs.values()) == {1}
    # Each device's counters folded in order: its usage is the last reading less the first.
    for installed in fleet:
        used = sum(u.quantity for u in HourlyUsage.objects.filter(asset=installed.asset, metric="run_hours"))
        assert used == Decimal(ROWS - 1) / 100
        installed.device.refresh_from_db()
        assert installed.device.last_seq == ROWS - 1


def test_a_drain_takes_the_devices_of_the_oldest_rows_first(
    customer_a: Customer, compressor: AssetModel
) -> None:
    """Fairness: under a steady load a device whose rows wait longest is never left behind."""
    fleet = [install(customer_a, compressor, f"F-{n:02d}") for n in range(4)]
    for installed in reversed(fleet):  # the last device's row is the oldest
        IngestInbox.objects.create(device_id=installed.device.pk, count=1, items=[_item(0)])
    assert worker.process_batch(max_devices=1).rows == 1
    assert Heartbeat.objects.get().device_id == fleet[-1].device.pk


def test_rows_of_a_deleted_device_are_cleared_not_left_waiting(
    customer_a: Customer, compressor: AssetModel
) -> None:
    installed = install(customer_a, compressor, "GONE")
    ghost = "00000000-0000-4000-8000-000000000001"  # no device row: its heartbeats are dropped
    IngestInbox.objects.create(device_id=ghost, count=1, items=[_item(0)])
    IngestInbox.objects.create(device_id=installed.device.pk, count=1, items=[_item(0)])
    result = worker.drain()
    assert (result.rows, result.stored) == (2, 1)
    assert not IngestInbox.objects.exists()
