"""The worker side: inbox → heartbeats stored once → device/asset state → hourly usage."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet import services
from fleet.ingest import publisher, state, store, worker
from fleet.models import (
    AssetModel,
    AssetStatus,
    FailedBatch,
    Heartbeat,
    HourlyUsage,
    IngestInbox,
    TelemetryRollup,
)
from fleet.usage import usage_truth
from portal.models import Customer
from tests.fleet_fixtures import Installed, deliver_shuffled, install


def enqueue(installed: Installed, items: list[dict[str, Any]]) -> None:
    """What the ingest view writes for an accepted body (already validated, ts in UTC)."""
    IngestInbox.objects.create(device_id=installed.device.pk, count=len(items), items=items)


def item(seq: int, ts: datetime, status: str = "ok", **metrics: float) -> dict[str, Any]:
    return {
        "seq": seq,
        "ts": ts.astimezone(UTC).isoformat(),
        "status": status,
        "fault_code": "",
        "metrics": metrics,
    }


NOW = timezone.now().replace(microsecond=0)


def test_heartbeats_are_stored_once_per_device_and_seq(fleet_a: Installed) -> None:
    enqueue(fleet_a, [item(s, NOW - timedelta(seconds=60 - s), temp_c=60.0) for s in range(50)])
    enqueue(
        fleet_a, [item(s, NOW - timedelta(seconds=60 - s), temp_c=60.0) for s in range(40, 60)]
    )  # 10 repeats
    result = worker.drain()
    assert (result.rows, result.stored, result.duplicates) == (2, 60, 10)
    assert Heartbeat.objects.filter(device=fleet_a.device).count() == 60
    assert not IngestInbox.objects.exists()
    # Delivering everything again changes nothing.
    enqueue(fleet_a, [item(s, NOW - timedelta(seconds=60 - s), temp_c=60.0) for s in range(60)])
    assert worker.drain().stored == 0
    assert Heartbeat.objects.count() == 60


def test_a_batch_records_which_assets_changed_as_one_event_in_its_transaction(
    fleet_a: Installed, fleet_b: Installed
) -> None:
    """AssetStatusChanged commits with the batch (an outbox row for each subscribed handler);
    a batch that changes no asset (only repeats) records nothing."""
    from portal import outbox
    from portal.models import OutboxMessage

    enqueue(fleet_a, [item(1, NOW - timedelta(seconds=30), temp_c=60.0)])
    enqueue(fleet_b, [item(1, NOW - timedelta(seconds=30), temp_c=61.0)])
    worker.drain()
    messages = outbox.messages_of(list(OutboxMessage.objects.order_by("pk")))
    changed = sorted([str(fleet_a.asset.pk), str(fleet_b.asset.pk)])
    assert messages == [("billing.assets_reported", {"asset_ids": changed})]
    OutboxMessage.objects.all().delete()
    enqueue(fleet_a, [item(1, NOW - timedelta(seconds=30), temp_c=60.0)])  # a repeat
    assert worker.drain().duplicates == 1
    assert not OutboxMessage.objects.exists()


def test_the_newest_heartbeat_sets_status_values_and_last_seen(fleet_a: Installed) -> None:
    enqueue(fleet_a, [item(1, NOW - timedelta(minutes=2), temp_c=60.0, pressure_bar=7.0)])
    worker.drain()
    fleet_a.asset.refresh_from_db()
    assert fleet_a.asset.status == AssetStatus.ONLINE
    assert fleet_a.asset.last_values == {"temp_c": 60.0, "pressure_bar": 7.0}

    enqueue(fleet_a, [item(2, NOW - timedelta(minutes=1), status="fault", temp_c=99.5)])
    worker.drain()
    fleet_a.asset.refresh_from_db()
    fleet_a.device.refresh_from_db()
    assert fleet_a.asset.status == AssetStatus.FAULT
    assert fleet_a.asset.last_values == {"temp_c": 99.5, "pressure_bar": 7.0}
    assert fleet_a.asset.last_seen_at == NOW - timedelta(minutes=1)
    assert fleet_a.device.last_seq == 2


def test_a_late_replay_does_not_rewrite_the_present(fleet_a: Installed) -> None:
    enqueue(fleet_a, [item(10, NOW, status="ok", temp_c=61.0)])
    worker.drain()
    enqueue(fleet_a, [item(5, NOW - timedelta(hours=3), status="fault", temp_c=120.0)])
    worker.drain()
    fleet_a.asset.refresh_from_db()
    assert fleet_a.asset.status == AssetStatus.ONLINE
    assert fleet_a.asset.last_values["temp_c"] == 61.0
    assert Heartbeat.objects.count() == 2


def test_counters_become_hourly_usage_with_resets(fleet_a: Installed) -> None:
    hour = NOW.replace(minute=0, second=0) - timedelta(hours=2)
    readings = [(0, 100.0, 5), (1, 100.5, 20), (2, 101.25, 50), (3, 0.5, 70), (4, 2.0, 80)]
    enqueue(fleet_a, [item(seq, hour + timedelta(minutes=m), run_hours=v) for seq, v, m in readings])
    worker.drain()
    usage = {u.hour: u.quantity for u in HourlyUsage.objects.filter(asset=fleet_a.asset, metric="run_hours")}
    # First reading: baseline. +0.5, +0.75 in the first hour; reset to 0.5 counts 0.5, then +1.5.
    assert usage == {hour: Decimal("1.25"), hour + timedelta(hours=1): Decimal("2.0")}


def test_a_reading_arriving_late_is_folded_between_its_neighbours(fleet_a: Installed) -> None:
    hour = NOW.replace(minute=0, second=0) - timedelta(hours=5)
    enqueue(fleet_a, [item(0, hour, energy_kwh=10), item(2, hour + timedelta(hours=2), energy_kwh=30)])
    worker.drain()
    assert HourlyUsage.objects.get(hour=hour + timedelta(hours=2)).quantity == Decimal("20")
    enqueue(fleet_a, [item(1, hour + timedelta(hours=1), energy_kwh=12)])
    worker.drain()
    usage = {u.hour: u.quantity for u in HourlyUsage.objects.filter(metric="energy_kwh")}
    assert usage == {hour + timedelta(hours=1): Decimal("2"), hour + timedelta(hours=2): Decimal("18")}
    assert Heartbeat.objects.get(seq=2).increments == {"energy_kwh": "18.000000"}


def test_a_row_that_keeps_failing_is_set_aside_and_the_rest_is_stored(
    fleet_a: Installed, fleet_b: Installed
) -> None:
    enqueue(fleet_a, [item(1, NOW, temp_c=60.0)])
    IngestInbox.objects.create(device_id=fleet_b.device.pk, count=1, items=[{"seq": 1, "ts": "garbage"}])
    enqueue(fleet_a, [item(2, NOW, temp_c=61.0)])
    result = worker.drain()
    assert result.failed_rows == 1
    assert Heartbeat.objects.filter(device=fleet_a.device).count() == 2
    failed = FailedBatch.objects.get()
    assert failed.device_id == fleet_b.device.pk
    assert failed.items == [{"seq": 1, "ts": "garbage"}]
    assert "KeyError" in failed.error or "Error" in failed.error
    assert not IngestInbox.objects.exists()
    # An operator puts it back once the cause is fixed; here it fails again, and is set aside again.
    services.failed_batch_retry(batch=failed)
    assert worker.drain().failed_rows == 1


# --- usage is a function of the set of readings, not of how they arrive -------------------------

readings_strategy = st.lists(
    st.tuples(
        st.one_of(st.just("up"), st.just("reset")),
        st.decimals(min_value=0, max_value=50, places=3, allow_nan=False, allow_infinity=False),
        st.integers(min_value=1, max_value=50),  # minutes until the next reading
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=readings_strategy, seed=st.integers(0, 2**32 - 1))
def test_hourly_usage_equals_the_truth_under_any_delivery(
    customer_a: Customer, compressor: AssetModel, steps: list[tuple[str, Decimal, int]], seed: int
) -> None:
    rng = random.Random(seed)
    installed = install(customer_a, compressor, f"P-{uuid.uuid4().hex[:12]}")
    # The true history: a counter that rises and sometimes resets.
    history: list[tuple[int, float, datetime]] = []
    value, ts = Decimal("1000"), NOW - timedelta(days=3)
    for seq, (kind, amount, minutes) in enumerate(steps):
        value = amount if kind == "reset" else value + amount
        history.append((seq, float(value), ts))
        ts += timedelta(minutes=minutes)
    deliver_shuffled(installed, history, rng, "run_hours")

    stored = {
        u.hour: u.quantity
        for u in HourlyUsage.objects.filter(asset=installed.asset, metric="run_hours")
        if u.quantity
    }
    truth = {hour: q for hour, q in usage_truth(history).items() if q}
    assert stored == truth
    assert Heartbeat.objects.filter(device=installed.device).count() == len(history)


def test_received_at_is_when_the_view_accepted_it_not_when_the_worker_ran(fleet_a: Installed) -> None:
    accepted = NOW - timedelta(minutes=7)
    IngestInbox.objects.create(
        device_id=fleet_a.device.pk, count=1, items=[item(1, NOW, temp_c=60.0)], received_at=accepted
    )
    worker.drain()
    assert Heartbeat.objects.get(device=fleet_a.device).received_at == accepted


@override_settings(INGEST_LIVE_PUBLISH_SHARE=0.1)
def test_live_publishing_pauses_only_when_it_overdraws_its_share() -> None:
    live = publisher.LivePublisher()
    start = live._earned_at
    # Half the share, round after round (50 ms of CPU a second): never a pause.
    for second in range(1, 60):
        live._spend(0.05, start + second)
    assert live._pause_until == 0.0
    # A burst within the budget (200 ms) passes too; the next round overdraws it by 0.3 s,
    # which at a tenth of the time takes 3 s to earn back.
    live._spend(0.2, start + 60)
    assert live._pause_until == 0.0
    live._spend(0.3, start + 60)
    assert live._pause_until == pytest.approx(start + 63)
    # Earned back, it publishes freely again.
    live._spend(0.01, start + 64)
    assert live._pause_until == pytest.approx(start + 63)
    assert live._budget > 0


def test_a_batch_costs_as_many_queries_for_eight_devices_as_for_two(
    customer_a: Customer, compressor: AssetModel
) -> None:
    """No query per device: storing reads what it needs of devices and assets in one go (a
    column it left out would cost a query per device on first use)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    fleet = [install(customer_a, compressor, f"Q-{n:04d}") for n in range(8)]
    for installed in fleet:  # first reports: every asset comes online
        enqueue(installed, [item(1, NOW - timedelta(seconds=30), temp_c=60.0, run_hours=1.0)])
    worker.drain()

    def batch_queries(devices: list[Installed], seq: int) -> int:
        for installed in devices:
            enqueue(
                installed,
                [item(seq, NOW - timedelta(seconds=30 - seq), temp_c=60.0, run_hours=1.0 + seq)],
            )
        with CaptureQueriesContext(connection) as queries:
            result = worker.process_batch()
        assert result.stored == len(devices)
        return len(queries)

    assert batch_queries(fleet[:2], 2) == batch_queries(fleet, 3)


def _rule_reads(devices: list[Installed], seq: int) -> int:
    """Store one heartbeat of each device; how many queries read metric definitions or rules."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for installed in devices:
        enqueue(installed, [item(seq, NOW - timedelta(seconds=60 - seq), temp_c=95.0, run_hours=1.0 + seq)])
    with CaptureQueriesContext(connection) as queries:
        worker.process_batch()
    return sum(1 for q in queries if "fleet_alarmrule" in q["sql"] or "fleet_metricdefinition" in q["sql"])


def test_batches_keep_the_models_rules_until_one_is_saved(fleet_a: Installed) -> None:
    from fleet.models import Alarm, AlarmRule

    state.model_rules.clear()
    assert _rule_reads([fleet_a], 1) == 2  # counter metrics, alarm rules
    assert _rule_reads([fleet_a], 2) == 0  # kept
    AlarmRule.objects.create(
        asset_model=fleet_a.asset.model, name="Hot", metric="temp_c", comparison="gt",
        threshold=Decimal("90"), for_seconds=0, severity="major",
    )  # fmt: skip
    # The save cleared the copy: the new rule applies at once. Three reads now the model has a
    # rule: metrics, rules and the assets' own thresholds of those rules (fleet/thresholds.py).
    assert _rule_reads([fleet_a], 3) == 3
    assert Alarm.objects.filter(asset=fleet_a.asset, kind="threshold").count() == 1


def test_other_processes_changes_reach_the_batches_within_the_ttl(
    fleet_a: Installed, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleet.models import Alarm, AlarmRule

    rule = AlarmRule.objects.create(
        asset_model=fleet_a.asset.model, name="Hot", metric="temp_c", comparison="gt",
        threshold=Decimal("90"), for_seconds=0, severity="major",
    )  # fmt: skip
    _rule_reads([fleet_a], 1)
    # Another process switches it off: an UPDATE, which sends this process no signal.
    AlarmRule.objects.filter(pk=rule.pk).update(is_active=False)
    raised = Alarm.objects.filter(asset=fleet_a.asset, kind="threshold")
    raised.delete()
    assert _rule_reads([fleet_a], 2) == 0  # within the TTL the copy still holds the rule
    assert raised.count() == 1
    raised.delete()
    monkeypatch.setattr(state.ModelRules, "TTL", 0.0)  # the TTL passed
    assert _rule_reads([fleet_a], 3) == 2
    assert not raised.exists()  # read again: switched off


def test_a_failed_batch_reads_the_models_again_for_its_retries(
    fleet_a: Installed, fleet_b: Installed
) -> None:
    """A rule deleted in another process (its signal never reached this one) may be what failed
    the batch: the row-by-row retries must not use the kept copy."""
    state.model_rules.clear()
    assert _rule_reads([fleet_a], 1) == 2
    enqueue(fleet_a, [item(2, NOW, temp_c=61.0)])
    IngestInbox.objects.create(device_id=fleet_b.device.pk, count=1, items=[{"seq": 1, "ts": "garbage"}])
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        worker.process_batch()
    assert any("fleet_alarmrule" in q["sql"] for q in queries)  # within the TTL, yet read again
    assert Heartbeat.objects.filter(device=fleet_a.device, seq=2).exists()


def test_the_batch_loads_devices_and_assets_as_the_orm_would(fleet_a: Installed, fleet_b: Installed) -> None:
    """The locking query is SQL made once; what it loads must be what the ORM's query of the
    same columns loads: the same rows, values (JSON parsed) and deferred fields."""
    from django.db import transaction

    from fleet.models import Device

    enqueue(fleet_a, [item(1, NOW - timedelta(seconds=5), "warning", temp_c=71.5, run_hours=3.0)])
    worker.drain()
    ids = {str(fleet_a.device.pk), str(fleet_b.device.pk)}
    with transaction.atomic():
        loaded = store.locked_devices(ids, skip_locked=False)
    orm = list(
        Device.objects.select_related("asset")
        .only(*store.DEVICE_FIELDS, *(f"asset__{name}" for name in store.ASSET_FIELDS))
        .filter(pk__in=ids)
        .order_by("pk")
    )
    assert [d.pk for d in loaded] == [d.pk for d in orm]
    assert loaded[0].counter_state or loaded[1].counter_state  # JSON came back parsed
    for mine, theirs in zip(loaded, orm, strict=True):
        assert mine.get_deferred_fields() == theirs.get_deferred_fields()
        assert mine.asset.get_deferred_fields() == theirs.asset.get_deferred_fields()
        for model in (mine, mine.asset):
            assert (model._state.adding, model._state.db) == (False, theirs._state.db)
        for name in store.DEVICE_FIELDS:
            assert getattr(mine, name) == getattr(theirs, name), name
        for name in store.ASSET_FIELDS:
            assert getattr(mine.asset, name) == getattr(theirs.asset, name), name
    assert any(d.asset.last_values == {"temp_c": 71.5, "run_hours": 3.0} for d in loaded)


def test_stored_rows_and_rollups_are_exactly_the_heartbeats(
    customer_a: Customer, compressor: AssetModel
) -> None:
    """The batch writes its COPY text itself (docs/ingest.md, "The worker's batches"): every
    column comes back as sent, fault codes with the characters COPY's text format escapes
    among them, and the minute rollups are the heartbeats' own, also when a device's
    heartbeats come back to a minute (seq order is not ts order)."""
    fleet = [install(customer_a, compressor, f"R-{n}") for n in range(2)]
    start = NOW.replace(second=0) - timedelta(minutes=5)
    codes = ["", "E\t1", "back\\slash", "new\nline\r", "\\N", "ünï €"]
    sent: dict[tuple[str, int], dict[str, Any]] = {}
    for installed in fleet:
        items = []
        for seq in range(30):
            # minutes 0, 0, 1, 2, 2, then 0 again, …: seq order is not ts order
            second = (seq * 40) % 200 if seq < 10 else seq * 20
            ts = start + timedelta(seconds=second, microseconds=seq * 1001)
            metrics = {
                "temp_c": 55 + seq % 4 + 0.25,
                "pressure_bar": 7 if seq % 2 else 6.5,
                "run_hours": 100 + seq / 3,
            }
            body = item(seq, ts, status="warning" if seq % 7 == 0 else "ok", **metrics)
            body["fault_code"] = codes[seq % len(codes)]
            items.append(body)
            sent[(str(installed.device.pk), seq)] = body
        enqueue(installed, items)
    received = timezone.now() - timedelta(seconds=1, microseconds=123)
    IngestInbox.objects.update(received_at=received)

    assert worker.drain().stored == 60
    stored = Heartbeat.objects.values_list(
        "device_id", "seq", "customer_id", "asset_id", "ts", "status", "fault_code", "metrics", "received_at"
    )
    assert len(stored) == 60
    assets = {str(installed.device.pk): installed.asset.pk for installed in fleet}
    for device_id, seq, customer_id, asset_id, ts, status, fault_code, metrics, received_at in stored:
        body = sent[(str(device_id), seq)]
        assert (customer_id, asset_id) == (customer_a.pk, assets[str(device_id)])
        assert ts == datetime.fromisoformat(body["ts"])
        assert (status, fault_code, metrics) == (body["status"], body["fault_code"], body["metrics"])
        assert received_at == received

    truth: dict[tuple[Any, str, datetime], list[float]] = {}
    for (device_key, _), body in sent.items():
        minute = datetime.fromisoformat(body["ts"]).replace(second=0, microsecond=0)
        for code, value in body["metrics"].items():
            truth.setdefault((assets[device_key], code, minute), []).append(float(value))
    rollups = {
        (asset_id, metric, bucket): (count, total, least, greatest)
        for asset_id, metric, bucket, count, total, least, greatest in TelemetryRollup.objects.filter(
            resolution="minute"
        ).values_list("asset_id", "metric", "bucket", "count", "total", "minimum", "maximum")
    }
    assert set(rollups) == set(truth)
    for key, values in truth.items():
        count, total, least, greatest = rollups[key]
        assert (count, least, greatest) == (len(values), min(values), max(values))
        assert total == pytest.approx(sum(values), rel=1e-12)


@pytest.mark.django_db(transaction=True)  # the stage is emptied by a real commit
def test_the_rollup_stage_keeps_nothing_across_batches(customer_a: Customer, compressor: AssetModel) -> None:
    """Batches of COPY_FROM minute rollups or more go through a temporary table on the worker's
    connection. Rows a DELETE leaves dead in a temporary table are never vacuumed: it must be
    emptied by each commit, not grow by every batch for the connection's life."""
    from django.db import connection

    from fleet.telemetry import COPY_FROM, STAGE

    installed = install(customer_a, compressor, "STAGE")
    start = NOW.replace(second=0) - timedelta(hours=20)
    minutes = COPY_FROM // 4 + 10  # four metrics a heartbeat, one heartbeat a minute
    for batch in range(2):
        items = [
            item(
                seq,
                start + timedelta(minutes=seq),
                temp_c=60.0,
                pressure_bar=7.0,
                run_hours=seq,
                energy_kwh=seq,
            )
            for seq in range(batch * minutes, (batch + 1) * minutes)
        ]
        enqueue(installed, items)
        assert worker.process_batch().stored == minutes
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT pg_relation_size('{STAGE}'), count(*) FROM {STAGE}")  # noqa: S608
            assert cursor.fetchone() == (0, 0)
    assert TelemetryRollup.objects.filter(resolution="minute").count() == 2 * minutes * 4
