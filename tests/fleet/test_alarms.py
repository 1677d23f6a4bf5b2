"""Alarms: thresholds held for a while, device faults, offline detection, the lifecycle."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection

from fleet import alarms
from fleet.ingest import worker
from fleet.models import (
    Alarm,
    AlarmKind,
    AlarmRule,
    AlarmState,
    AssetModel,
    AssetStatus,
    AssetStatusChange,
    IngestInbox,
)
from portal.models import User
from tests.conftest import client_for
from tests.fleet.conftest import Installed

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


@pytest.fixture
def hot_rule(compressor: AssetModel) -> AlarmRule:
    return AlarmRule.objects.create(
        asset_model=compressor, name="Too hot", metric="temp_c", comparison="gt",
        threshold=Decimal("95"), for_seconds=60, severity="critical",
    )  # fmt: skip


def feed(installed: Installed, *readings: tuple[int, int, float, str]) -> None:
    """(seq, seconds after T0, temp_c, status) → through the real inbox and worker code."""
    items = [
        {"seq": seq, "ts": (T0 + timedelta(seconds=s)).isoformat(), "status": status, "fault_code": "E-42"
         if status == "fault" else "", "metrics": {"temp_c": temp}}
        for seq, s, temp, status in readings
    ]  # fmt: skip
    IngestInbox.objects.create(device_id=installed.device.pk, count=len(items), items=items)
    worker.drain()


def active(installed: Installed) -> list[Alarm]:
    return list(Alarm.objects.filter(asset=installed.asset, state__in=["raised", "acknowledged"]))


def test_a_threshold_raises_only_after_holding_long_enough(fleet_a: Installed, hot_rule: AlarmRule) -> None:
    feed(fleet_a, (1, 0, 96.0, "ok"), (2, 30, 97.0, "ok"))
    assert active(fleet_a) == []  # held for 30 s of the 60 needed
    feed(fleet_a, (3, 60, 98.0, "ok"))
    (alarm,) = active(fleet_a)
    assert (alarm.kind, alarm.severity, alarm.value) == (AlarmKind.THRESHOLD, "critical", Decimal("98"))
    assert alarm.raised_at == T0 + timedelta(seconds=60)
    feed(fleet_a, (4, 90, 99.0, "ok"), (5, 120, 99.5, "ok"))
    assert Alarm.objects.count() == 1  # one active alarm per asset and rule
    feed(fleet_a, (6, 150, 80.0, "ok"))
    alarm.refresh_from_db()
    assert alarm.state == AlarmState.CLEARED
    assert alarm.cleared_by is None
    assert "back to 80" in alarm.cleared_reason


def test_a_brief_spike_raises_nothing(fleet_a: Installed, hot_rule: AlarmRule) -> None:
    feed(fleet_a, (1, 0, 99.0, "ok"), (2, 30, 70.0, "ok"), (3, 60, 99.0, "ok"), (4, 90, 70.0, "ok"))
    assert not Alarm.objects.exists()


def test_a_device_fault_raises_and_clears(fleet_a: Installed) -> None:
    feed(fleet_a, (1, 0, 60.0, "fault"))
    (alarm,) = active(fleet_a)
    assert alarm.kind == AlarmKind.DEVICE_FAULT
    assert "E-42" in alarm.message
    fleet_a.asset.refresh_from_db()
    assert fleet_a.asset.status == AssetStatus.FAULT
    feed(fleet_a, (2, 30, 60.0, "ok"))
    assert active(fleet_a) == []
    changes = list(
        AssetStatusChange.objects.filter(asset=fleet_a.asset).order_by("at").values_list("status", flat=True)
    )
    assert changes == ["fault", "online"]


def test_a_late_replay_raises_no_alarm(fleet_a: Installed, hot_rule: AlarmRule) -> None:
    feed(fleet_a, (10, 600, 60.0, "ok"))
    feed(fleet_a, (1, 0, 99.0, "fault"), (2, 100, 99.0, "fault"))
    assert not Alarm.objects.exists()


def test_silence_marks_offline_once_and_a_heartbeat_brings_it_back(fleet_a: Installed) -> None:
    feed(fleet_a, (1, 0, 60.0, "ok"))
    interval = fleet_a.asset.model.heartbeat_interval_seconds
    assert alarms.offline_sweep(now=T0 + timedelta(seconds=3 * interval - 1)) == []
    later = T0 + timedelta(seconds=3 * interval + 1)
    assert alarms.offline_sweep(now=later) == [str(fleet_a.asset.pk)]
    assert alarms.offline_sweep(now=later) == []  # claimed once
    fleet_a.asset.refresh_from_db()
    assert fleet_a.asset.status == AssetStatus.OFFLINE
    (alarm,) = active(fleet_a)
    assert alarm.kind == AlarmKind.OFFLINE
    offline = AssetStatusChange.objects.get(asset=fleet_a.asset, status="offline")
    assert offline.at == T0 + timedelta(seconds=interval)  # from when the next heartbeat was due
    feed(fleet_a, (2, 3 * interval + 30, 60.0, "ok"))
    fleet_a.asset.refresh_from_db()
    assert fleet_a.asset.status == AssetStatus.ONLINE
    assert active(fleet_a) == []


def test_never_seen_assets_are_not_offline(fleet_a: Installed) -> None:
    assert alarms.offline_sweep(now=datetime.now(UTC) + timedelta(days=1)) == []


def test_support_acknowledges_and_clears_customers_only_look(
    fleet_a: Installed, support: User, viewer_a: User, admin_a: User
) -> None:
    feed(fleet_a, (1, 0, 60.0, "fault"))
    (alarm,) = active(fleet_a)
    url = f"/api/v1/alarms/{alarm.pk}"
    assert client_for(viewer_a).post(f"{url}/acknowledge/").status_code == 403
    assert client_for(admin_a).post(f"{url}/clear/").status_code == 403
    listed = client_for(viewer_a).get("/api/v1/alarms/?state=active").json()
    assert [a["id"] for a in listed["results"]] == [str(alarm.pk)]

    acked = client_for(support).post(f"{url}/acknowledge/")
    assert acked.status_code == 200
    assert acked.json()["state"] == "acknowledged"
    assert acked.json()["acknowledged_by"] == support.email
    assert client_for(support).post(f"{url}/acknowledge/").status_code == 200  # idempotent
    cleared = client_for(support).post(f"{url}/clear/")
    assert cleared.json()["state"] == "cleared"
    assert client_for(support).post(f"{url}/acknowledge/").status_code == 400
    assert client_for(viewer_a).get("/api/v1/alarms/?state=active").json()["count"] == 0


def test_alarm_filters_validate(viewer_a: User, fleet_a: Installed) -> None:
    client = client_for(viewer_a)
    assert client.get("/api/v1/alarms/?state=burning").status_code == 400
    assert client.get("/api/v1/alarms/?severity=apocalyptic").status_code == 400
    assert client.get("/api/v1/alarms/?asset=42").status_code == 400
    assert client.get(f"/api/v1/alarms/?asset={fleet_a.asset.pk}&severity=critical").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_concurrent_raises_make_one_alarm(fleet_a: Installed) -> None:
    barrier = threading.Barrier(8)
    results: list[Any] = []

    def raise_it() -> None:
        try:
            barrier.wait()
            results.append(
                alarms.alarm_raise(
                    asset=fleet_a.asset,
                    key="offline",
                    kind=AlarmKind.OFFLINE,
                    severity="critical",
                    message="silent",
                    at=T0,
                )
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=raise_it) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Alarm.objects.filter(asset=fleet_a.asset).count() == 1
    assert sum(1 for r in results if r is not None) == 1


def test_asset_models_carry_their_alarm_rules(operator: User) -> None:
    client = client_for(operator)
    body = {
        "code": "pump-x", "name": "Pump X",
        "metrics": [{"code": "flow", "label": "Flow", "kind": "gauge"}],
        "alarm_rules": [
            {"name": "Dry run", "metric": "flow", "comparison": "lt", "threshold": "1.5", "for_seconds": 30}
        ],
    }  # fmt: skip
    created = client.post("/api/v1/asset-models/", body, content_type="application/json")
    assert created.status_code == 201, created.content
    assert created.json()["alarm_rules"][0]["threshold"] == "1.500000"
    body["code"] = "pump-y"
    body["alarm_rules"][0]["metric"] = "pressure"  # type: ignore[index]
    assert client.post("/api/v1/asset-models/", body, content_type="application/json").status_code == 400


def test_the_alarm_centre_lists_acknowledges_and_stays_scoped(
    support: User, viewer_a: User, fleet_a: Installed, fleet_b: Installed
) -> None:
    feed(fleet_a, (1, 0, 60.0, "fault"))
    feed(fleet_b, (1, 0, 60.0, "fault"))
    staff_page = client_for(support).get("/alarms/").content.decode()
    assert fleet_a.asset.name in staff_page
    assert fleet_b.asset.name in staff_page
    customer_page = client_for(viewer_a).get("/alarms/").content.decode()
    assert fleet_a.asset.name in customer_page
    assert fleet_b.asset.name not in customer_page
    assert "Acknowledge" not in customer_page
    only_b = client_for(support).get(f"/alarms/?customer={fleet_b.asset.customer_id}").content.decode()
    assert fleet_a.asset.name not in only_b

    (alarm,) = active(fleet_a)
    response = client_for(support).post(f"/fleet/alarms/{alarm.pk}/acknowledge/", {"next": "/alarms/"})
    assert response.status_code == 302
    assert response["Location"] == "/alarms/"
    alarm.refresh_from_db()
    assert alarm.state == AlarmState.ACKNOWLEDGED
    # An open redirect is not: foreign hosts fall back to the asset page.
    response = client_for(support).post(f"/fleet/alarms/{alarm.pk}/clear/", {"next": "https://evil.example/"})
    assert response["Location"] == f"/fleet/assets/{fleet_a.asset.pk}/"
    assert client_for(support).post(f"/fleet/alarms/{alarm.pk}/explode/").status_code == 404
