"""Partitioned telemetry (docs/ingest.md, "Partitioned telemetry"): partitions made by
pg_partman, retention by dropping them, (device, seq) stored once, the conversion migration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from fleet import partitions, tasks
from fleet.ingest import worker
from fleet.models import Heartbeat, IngestInbox, TelemetryRetention, TelemetryRollup
from portal.models import Customer
from tests.fleet.conftest import Installed

NOW = datetime.now(UTC)
TODAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)


def item(seq: int, ts: datetime, temp: float = 60.0) -> dict[str, Any]:
    return {"seq": seq, "ts": ts.isoformat(), "status": "ok", "fault_code": "", "metrics": {"temp_c": temp}}


def deliver(installed: Installed, *items: dict[str, Any]) -> None:
    IngestInbox.objects.create(device_id=installed.device.pk, count=len(items), items=list(items))


def rows(sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return list(cursor.fetchall()) if cursor.description else []


def exists(table: str) -> bool:
    return rows("SELECT to_regclass(%s) IS NOT NULL", [table])[0][0]


def make_partitions(parent: str, *moments: datetime) -> None:
    rows("SELECT partman.create_partition_time(%s, %s::timestamptz[])", [f"public.{parent}", list(moments)])


@pytest.mark.django_db
def test_migrate_makes_partitions_back_over_the_late_window_and_ahead() -> None:
    raw = partitions.partitions(partitions.RAW)
    assert raw[0][1] <= TODAY - timedelta(days=settings.INGEST_MAX_AGE_DAYS)
    assert raw[-1][2] >= TODAY + timedelta(days=8)
    assert all(end - start == timedelta(days=1) for _, start, end in raw)
    assert [name for name, start, _ in raw if start == TODAY] == [f"fleet_heartbeat_p{TODAY:%Y_%m_%d}"]
    minute = partitions.partitions(partitions.MINUTE)
    assert minute[-1][1] >= TODAY.replace(day=1) + timedelta(days=31)
    assert exists("fleet_telemetryrollup_coarse")
    # Maintenance keeps them ahead and is idempotent.
    partitions.maintain()
    ahead = partitions.partitions(partitions.RAW)
    assert ahead[-1][2] >= raw[-1][2]
    partitions.maintain()
    assert partitions.partitions(partitions.RAW) == ahead


def fillfactor(table: str) -> int | None:
    options = rows("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", [table])[0][0] or []
    return next((int(o.split("=")[1]) for o in options if o.startswith("fillfactor=")), None)


@pytest.mark.django_db
def test_rollup_partitions_leave_room_for_updates_in_place_new_ones_too() -> None:
    """The worker updates rollup rows batch after batch: each page keeps room so the updates
    stay on it (migration 0012); pg_partman copies it from its template to new partitions."""
    assert fillfactor("fleet_telemetryrollup_coarse") == 50
    minute = partitions.partitions(partitions.MINUTE)
    assert minute
    assert all(fillfactor(name) == 75 for name, _, _ in minute)
    later = minute[-1][2] + timedelta(days=40)
    make_partitions("fleet_telemetryrollup_minute", later)
    assert fillfactor(f"fleet_telemetryrollup_minute_p{later:%Y_%m}") == 75
    assert fillfactor(f"fleet_heartbeat_p{TODAY:%Y_%m_%d}") is None  # written once, never updated


def test_heartbeats_across_midnight_land_in_two_partitions(fleet_a: Installed) -> None:
    deliver(fleet_a, item(1, TODAY - timedelta(seconds=30)), item(2, TODAY + timedelta(seconds=30)))
    worker.drain()
    stored = rows("SELECT tableoid::regclass::text, seq FROM fleet_heartbeat ORDER BY seq")
    yesterday = TODAY - timedelta(days=1)
    assert stored == [
        (f"fleet_heartbeat_p{yesterday:%Y_%m_%d}", 1),
        (f"fleet_heartbeat_p{TODAY:%Y_%m_%d}", 2),
    ]
    # Their minute rollups are in month partitions, hour and day ones in the coarse one.
    tables = {t for (t,) in rows("SELECT DISTINCT tableoid::regclass::text FROM fleet_telemetryrollup")}
    assert f"fleet_telemetryrollup_minute_p{TODAY:%Y_%m}" in tables
    assert "fleet_telemetryrollup_coarse" in tables


def test_a_seq_sent_again_with_another_time_is_stored_once(fleet_a: Installed) -> None:
    first = NOW - timedelta(minutes=10)
    deliver(fleet_a, item(7, first, 60.0))
    worker.drain()
    deliver(fleet_a, item(7, first + timedelta(minutes=1), 99.0))  # a later batch
    deliver(fleet_a, item(8, first + timedelta(minutes=2)), item(8, NOW - timedelta(days=1)))  # one batch
    result = worker.drain()
    assert result.duplicates == 2
    stored = list(Heartbeat.objects.filter(device=fleet_a.device).order_by("seq").values_list("seq", "ts"))
    assert stored == [(7, first), (8, first + timedelta(minutes=2))]
    minute = TelemetryRollup.objects.get(resolution="minute", bucket=first.replace(second=0, microsecond=0))
    assert (minute.count, minute.maximum) == (1, 60.0)  # the repeat folded into nothing


def counted(seq: int, ts: datetime, run_hours: float) -> dict[str, Any]:
    return {**item(seq, ts), "metrics": {"temp_c": 60.0, "run_hours": run_hours}}


def test_a_replayed_batch_over_two_days_stores_nothing_twice(fleet_a: Installed) -> None:
    """A device sends again, out of order, what it sent over midnight: seqs far apart (runs of
    the look-up), one with another time; only the seq it never sent is new."""
    yesterday = TODAY - timedelta(hours=2)
    sent = [counted(seq, yesterday + timedelta(minutes=seq), seq / 60) for seq in (1, 2, 3)]
    sent += [counted(seq, TODAY + timedelta(minutes=seq), seq / 60) for seq in (500, 501, 503)]
    deliver(fleet_a, *sent)
    deliver(fleet_a, counted(900, TODAY + timedelta(hours=1), 15.0))
    worker.drain()
    hour_rollups = sorted(
        TelemetryRollup.objects.filter(resolution="hour", metric="temp_c").values_list("bucket", "count")
    )
    moved = {**sent[4], "ts": (yesterday + timedelta(minutes=30)).isoformat()}  # 501 on the other day
    deliver(fleet_a, sent[5], counted(502, TODAY + timedelta(minutes=502), 502 / 60), sent[0], moved, sent[2])
    deliver(fleet_a, *sent)
    result = worker.drain()
    assert (result.stored, result.duplicates) == (1, 10)
    stored = rows("SELECT tableoid::regclass::text, seq FROM fleet_heartbeat ORDER BY seq")
    assert [seq for _, seq in stored] == [1, 2, 3, 500, 501, 502, 503, 900]
    assert {table for table, _ in stored} == {
        f"fleet_heartbeat_p{TODAY - timedelta(days=1):%Y_%m_%d}",
        f"fleet_heartbeat_p{TODAY:%Y_%m_%d}",
    }
    # The late 502 is folded between its stored neighbours, in today's partition: 503 now
    # adds only its own step, and the rollups count it once, the repeats not at all.
    increments = dict(
        Heartbeat.objects.filter(device=fleet_a.device, seq__in=[502, 503]).values_list("seq", "increments")
    )
    assert increments == {502: {"run_hours": "0.016667"}, 503: {"run_hours": "0.016666"}}
    after = dict(
        TelemetryRollup.objects.filter(resolution="hour", metric="temp_c").values_list("bucket", "count")
    )
    late_hour = (TODAY + timedelta(minutes=502)).replace(minute=0)
    assert after == {bucket: count + (bucket == late_hour) for bucket, count in hour_rollups}


def _heartbeat(installed: Installed, seq: int, ts: datetime) -> Heartbeat:
    return Heartbeat.objects.create(
        customer_id=installed.asset.customer_id, asset=installed.asset, device=installed.device,
        seq=seq, ts=ts, status="ok", metrics={"temp_c": 1.0},
    )  # fmt: skip


def _rollup(installed: Installed, resolution: str, bucket: datetime) -> TelemetryRollup:
    return TelemetryRollup.objects.create(
        customer_id=installed.asset.customer_id, asset=installed.asset, metric="temp_c",
        resolution=resolution, bucket=bucket, count=1, total=1.0, minimum=1.0, maximum=1.0,
    )  # fmt: skip


def test_prune_drops_old_partitions_and_keeps_what_a_contract_keeps_longer(
    fleet_a: Installed, fleet_b: Installed, customer_a: Customer
) -> None:
    TelemetryRetention.objects.create(customer=customer_a, raw_days=365, minute_days=365)
    old, older, recent = TODAY - timedelta(days=200), TODAY - timedelta(days=400), TODAY - timedelta(days=3)
    make_partitions("fleet_heartbeat", old, older)
    for installed, seq in ((fleet_a, 1), (fleet_b, 1)):
        _heartbeat(installed, seq, old + timedelta(hours=5))
        _heartbeat(installed, seq + 1, older + timedelta(hours=5))
        _heartbeat(installed, seq + 2, recent)
    month = (TODAY - timedelta(days=250)).replace(day=1)
    make_partitions("fleet_telemetryrollup_minute", month)
    for installed in (fleet_a, fleet_b):
        _rollup(installed, "minute", month + timedelta(days=3))
        _rollup(installed, "hour", month + timedelta(days=3))

    dropped = partitions.prune(partitions.RAW, now=NOW) + partitions.prune(partitions.MINUTE, now=NOW)

    for name in (f"fleet_heartbeat_p{old:%Y_%m_%d}", f"fleet_heartbeat_p{older:%Y_%m_%d}"):
        assert name in dropped
        assert not exists(name)  # dropped whole, not emptied
    assert f"fleet_telemetryrollup_minute_p{month:%Y_%m}" in dropped
    assert set(Heartbeat.objects.values_list("customer_id", "seq")) == {
        (customer_a.pk, 3),
        (fleet_b.asset.customer_id, 3),
    }
    # Customer A's contract keeps 365 days: its 200-day-old row is kept aside, not its 400-day one.
    assert rows("SELECT customer_id, seq FROM fleet_heartbeat_retained") == [(customer_a.pk, 1)]
    assert rows("SELECT customer_id, resolution FROM fleet_telemetryrollup_retained") == [
        (customer_a.pk, "minute")
    ]
    assert TelemetryRollup.objects.filter(resolution="hour").count() == 2  # kept for good
    assert not TelemetryRollup.objects.filter(resolution="minute").exists()

    # When the contract's own window passes, the kept rows go too.
    TelemetryRetention.objects.filter(customer=customer_a).update(raw_days=190)
    assert partitions.prune(partitions.RAW, now=NOW) == []
    assert rows("SELECT count(*) FROM fleet_heartbeat_retained") == [(0,)]


def test_the_hourly_task_makes_partitions_ahead_and_drops_old_ones(fleet_a: Installed) -> None:
    old = TODAY - timedelta(days=settings.RAW_RETENTION_DAYS + 1)
    make_partitions("fleet_heartbeat", old)
    _heartbeat(fleet_a, 1, old)
    ahead = partitions.partitions(partitions.RAW)[-1][2]
    for name, start, _ in partitions.partitions(partitions.RAW):
        if start > TODAY + timedelta(days=1):
            rows(f"DROP TABLE {name}")  # as if beat had not run for a week

    assert f"fleet_heartbeat_p{old:%Y_%m_%d}" in tasks.telemetry_partitions()
    assert partitions.partitions(partitions.RAW)[-1][2] >= ahead
    assert not Heartbeat.objects.exists()


BEFORE, AFTER = ("fleet", "0009_maintenance_health_thresholds"), ("fleet", "0010_partitioned_telemetry")


@pytest.mark.django_db(transaction=True)
def test_the_migration_converts_a_database_with_rows(fleet_a: Installed) -> None:
    MigrationExecutor(connection).migrate([BEFORE])
    assert not rows("SELECT 1 FROM pg_partitioned_table WHERE partrelid = 'fleet_heartbeat'::regclass")
    asset, device, customer = fleet_a.asset.pk, fleet_a.device.pk, fleet_a.asset.customer_id
    days = [TODAY - timedelta(days=120), TODAY - timedelta(days=1), TODAY]
    for seq, ts in enumerate(days):
        rows(
            "INSERT INTO fleet_heartbeat (customer_id, asset_id, device_id, seq, ts, received_at, status, "
            "fault_code, metrics, increments) VALUES (%s, %s, %s, %s, %s, %s, 'ok', '', '{}', '{}')",
            [customer, asset, device, seq, ts, ts],
        )
        rows(
            "INSERT INTO fleet_telemetryrollup (customer_id, asset_id, metric, resolution, bucket, count, "
            "total, minimum, maximum) VALUES (%s, %s, 'temp_c', %s, %s, 1, 1, 1, 1)",
            [customer, asset, "minute" if seq else "day", ts],
        )
    before = rows("SELECT id, seq, ts FROM fleet_heartbeat ORDER BY id")

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert rows("SELECT id, seq, ts FROM fleet_heartbeat ORDER BY id") == before
    assert {t for (t,) in rows("SELECT tableoid::regclass::text FROM fleet_heartbeat")} == {
        f"fleet_heartbeat_p{day:%Y_%m_%d}" for day in days
    }  # partitions from the oldest row's day
    assert rows("SELECT resolution, tableoid::regclass::text FROM fleet_telemetryrollup ORDER BY bucket") == [
        ("day", "fleet_telemetryrollup_coarse"),
        ("minute", f"fleet_telemetryrollup_minute_p{days[1]:%Y_%m}"),
        ("minute", f"fleet_telemetryrollup_minute_p{TODAY:%Y_%m}"),
    ]
    # The ORM goes on where the old table's ids ended, and (device, seq, ts) is unique.
    new = _heartbeat(fleet_a, 9, NOW)
    assert new.pk > before[-1][0]
    with pytest.raises(Exception, match=r"\(device_id, seq, ts\)"):
        _heartbeat(fleet_a, 9, NOW)
