"""A prediction opens one proactive maintenance ticket before the threshold alarm fires, with a
proposed window before the expected time, and resolves itself when the trend recovers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from fleet.health import evaluate
from fleet.ingest import worker
from fleet.models import Alarm, AlarmRule, AssetModel, HealthRule, IngestInbox, WindowStatus
from support.models import Category, Source, Status, Ticket
from tests.fleet_fixtures import Installed
from tests.outbox import hold_outbox, run_outbox

STEP = timedelta(minutes=10)


@pytest.fixture
def start() -> datetime:
    return (timezone.now() - timedelta(days=5)).replace(minute=0, second=0, microsecond=0).astimezone(UTC)


def feed(installed: Installed, seq: int, readings: list[tuple[datetime, float]]) -> int:
    """Heartbeats through the ingest worker: the rollups the rules read and the threshold
    alarms come from the same readings."""
    items = []
    for ts, value in readings:
        seq += 1
        items.append({"seq": seq, "ts": ts.isoformat(), "status": "ok", "fault_code": "",
                      "metrics": {"temp_c": value}})  # fmt: skip
    IngestInbox.objects.create(device_id=installed.device.pk, count=len(items), items=items)
    worker.drain()
    return seq


def test_a_drift_opens_one_proactive_ticket_before_the_threshold_and_it_resolves(
    fleet_a: Installed, compressor: AssetModel, start: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    hold_outbox(monkeypatch)
    AlarmRule.objects.create(
        asset_model=compressor, name="Oil overheating", metric="temp_c", comparison="gt",
        threshold=Decimal("85"), severity="critical", ticket_priority="P1",
    )  # fmt: skip
    trend = HealthRule.objects.create(
        asset_model=compressor, name="Oil temperature heading for 85 °C", metric="temp_c", kind="trend",
        comparison="gt", limit=Decimal("85"), horizon_hours=24, lookback_hours=48, ticket_priority="P2",
    )  # fmt: skip

    def temperature(hour: float) -> float:  # flat at 60 °C for a day, then +0.5 °C an hour
        return 60.0 if hour < 24 else 60.0 + 0.5 * (hour - 24)

    # given a day flat, then the drift, evaluated every 2 hours (as the beat would)
    seq, hour = 0, 0
    proactive: list[Ticket] = []
    while not proactive:
        readings = [(start + timedelta(hours=hour) + STEP * i, temperature(hour + i / 6)) for i in range(12)]
        seq = feed(fleet_a, seq, readings)
        hour += 2
        evaluate([fleet_a.asset.pk], start + timedelta(hours=hour))
        run_outbox()
        proactive = list(Ticket.objects.filter(asset=fleet_a.asset))
        assert hour < 74, "no prediction before the drift reached the limit"
    # then: one maintenance ticket from the prediction, while the temperature is still below 85 °C
    (ticket,) = proactive
    assert temperature(hour) < 85
    assert not Alarm.objects.filter(asset=fleet_a.asset, kind="threshold").exists()
    prediction = Alarm.objects.get(asset=fleet_a.asset, kind="prediction")
    assert prediction.expected_at is not None
    assert prediction.expected_at - (start + timedelta(hours=hour)) >= timedelta(hours=12)
    assert (ticket.category, ticket.source, ticket.priority) == (Category.MAINTENANCE, Source.ALARM, "P2")
    assert ticket.due_at is not None  # the SLA clock runs
    window = ticket.maintenance_window
    assert window is not None
    assert window.status == WindowStatus.PROPOSED
    assert list(window.assets.all()) == [fleet_a.asset]
    assert window.ends_at <= prediction.expected_at
    assert trend.pk == prediction.health_rule_id

    # when it keeps drifting for 6 more hours, still one ticket
    for _ in range(3):
        readings = [(start + timedelta(hours=hour) + STEP * i, temperature(hour + i / 6)) for i in range(12)]
        seq = feed(fleet_a, seq, readings)
        hour += 2
        evaluate([fleet_a.asset.pk], start + timedelta(hours=hour))
        run_outbox()
    assert Ticket.objects.filter(asset=fleet_a.asset).count() == 1

    # when the cause is fixed and it runs at 60 °C again, the prediction clears
    for _ in range(12):
        readings = [(start + timedelta(hours=hour) + STEP * i, 60.0) for i in range(12)]
        seq = feed(fleet_a, seq, readings)
        hour += 2
        evaluate([fleet_a.asset.pk], start + timedelta(hours=hour))
        run_outbox()
        prediction.refresh_from_db()
        if prediction.state == "cleared":
            break
    assert prediction.state == "cleared"
    assert prediction.cleared_reason == "trend recovered"
    # then the ticket resolved itself and its proposed window is withdrawn
    ticket.refresh_from_db()
    window.refresh_from_db()
    assert ticket.status == Status.RESOLVED
    assert window.status == WindowStatus.CANCELLED
    assert Ticket.objects.filter(asset=fleet_a.asset).count() == 1
    assert not Alarm.objects.filter(asset=fleet_a.asset, kind="threshold").exists()
