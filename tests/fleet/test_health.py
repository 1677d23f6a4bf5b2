"""Health rules over stored rollups: predictions, anomalies, the score (docs/health.md)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from fleet.health import evaluate, health_key
from fleet.health import rules as core
from fleet.models import (
    Alarm,
    AlarmKind,
    AlarmState,
    Asset,
    AssetHealth,
    AssetModel,
    AssetStatusChange,
    HealthRule,
    MaintenanceWindow,
    TelemetryRollup,
)
from portal.models import Customer, User
from tests.conftest import client_for
from tests.fleet_fixtures import Installed, install

NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def put_hours(asset: Asset, metric: str, values: Sequence[float], *, end: datetime = NOW,
              spread: float | Sequence[float] = 1.0) -> None:  # fmt: skip
    """Hour rollups whose means are `values`, the last one the hour before `end`."""
    spreads = [spread] * len(values) if isinstance(spread, float | int) else list(spread)
    start = end - timedelta(hours=len(values))
    TelemetryRollup.objects.bulk_create(
        [
            TelemetryRollup(
                customer_id=asset.customer_id,
                asset=asset,
                metric=metric,
                resolution="hour",
                bucket=start + timedelta(hours=i),
                count=60,
                total=value * 60,
                minimum=value - width / 2,
                maximum=value + width / 2,
            )
            for i, (value, width) in enumerate(zip(values, spreads, strict=True))
        ]
    )


@pytest.fixture
def temp_trend(compressor: AssetModel) -> HealthRule:
    return HealthRule.objects.create(
        asset_model=compressor, name="Oil temperature trend", metric="temp_c", kind="trend",
        comparison="gt", limit=Decimal("85"), horizon_hours=24, lookback_hours=48, severity="warning",
    )  # fmt: skip


@pytest.fixture
def pressure_anomaly(compressor: AssetModel) -> HealthRule:
    return HealthRule.objects.create(
        asset_model=compressor, name="Pressure unlike normal", metric="pressure_bar", kind="anomaly",
        lookback_hours=72, sensitivity=Decimal("4"), severity="warning",
    )  # fmt: skip


def active(asset: Asset) -> list[Alarm]:
    return list(Alarm.objects.filter(asset=asset, state__in=["raised", "acknowledged"]))


def test_a_drift_raises_a_prediction_with_its_expected_time(
    fleet_a: Installed, temp_trend: HealthRule
) -> None:
    # given 48 h rising 0.5 °C/h with noise, now at ~70 °C: 85 °C in ~30 h... then steeper
    rng = random.Random(1)
    put_hours(fleet_a.asset, "temp_c", [50 + 0.5 * i + rng.gauss(0, 0.8) for i in range(48)])
    # when
    summary = evaluate([fleet_a.asset.pk], NOW)
    # then: 50 + 0.5*48 = 74 now, 11 °C to go at 0.5 °C/h: ~22 h, within the 24 h horizon
    (alarm,) = active(fleet_a.asset)
    assert summary.raised == 1
    assert alarm.kind == AlarmKind.PREDICTION
    assert alarm.health_rule_id == temp_trend.pk
    assert alarm.key == health_key(temp_trend)
    assert alarm.expected_at is not None
    hours = (alarm.expected_at - NOW).total_seconds() / 3600
    assert 17 < hours < 27
    assert "Temperature predicted to exceed 85 °C in ~" in alarm.message
    health = AssetHealth.objects.get(asset=fleet_a.asset)
    assert health.score < 100
    assert health.risk != "ok"
    assert health.detail[str(temp_trend.pk)]["forecast"][1][1] == 85.0


def test_a_noisy_flat_sensor_raises_nothing(fleet_a: Installed, temp_trend: HealthRule) -> None:
    # given a sensor around 78 °C (7 below the limit) with a ±4 °C noise, for many seeds
    for seed in range(20):
        TelemetryRollup.objects.all().delete()
        rng = random.Random(seed)
        put_hours(fleet_a.asset, "temp_c", [78 + rng.gauss(0, 4) for _ in range(48)], spread=12.0)
        evaluate([fleet_a.asset.pk], NOW)
        assert active(fleet_a.asset) == [], seed
    assert AssetHealth.objects.get(asset=fleet_a.asset).score == 100


def test_the_prediction_moves_and_clears_when_the_trend_recovers(
    fleet_a: Installed, temp_trend: HealthRule
) -> None:
    # given a raised prediction
    put_hours(fleet_a.asset, "temp_c", [50 + 0.5 * i for i in range(48)])
    evaluate([fleet_a.asset.pk], NOW)
    (alarm,) = active(fleet_a.asset)
    first = alarm.expected_at
    assert first is not None
    # when it climbs faster for 6 hours, the expected time comes nearer
    put_hours(fleet_a.asset, "temp_c", [75 + 1.5 * i for i in range(6)], end=NOW + timedelta(hours=6))
    summary = evaluate([fleet_a.asset.pk], NOW + timedelta(hours=6))
    alarm.refresh_from_db()
    assert summary.moved == 1
    assert alarm.expected_at is not None
    assert alarm.expected_at < first
    # when it then cools off and stays flat for a day
    put_hours(fleet_a.asset, "temp_c", [60.0] * 48, end=NOW + timedelta(hours=54))
    summary = evaluate([fleet_a.asset.pk], NOW + timedelta(hours=54))
    alarm.refresh_from_db()
    assert summary.cleared == 1
    assert alarm.state == AlarmState.CLEARED
    assert alarm.cleared_reason == "trend recovered"
    assert AssetHealth.objects.get(asset=fleet_a.asset).score == 100


def test_evaluating_twice_raises_once(fleet_a: Installed, temp_trend: HealthRule) -> None:
    put_hours(fleet_a.asset, "temp_c", [50 + 0.5 * i for i in range(48)])
    assert evaluate([fleet_a.asset.pk], NOW).raised == 1
    assert evaluate([fleet_a.asset.pk], NOW).raised == 0
    assert len(active(fleet_a.asset)) == 1


def test_an_anomaly_is_raised_and_cleared(fleet_a: Installed, pressure_anomaly: HealthRule) -> None:
    rng = random.Random(3)
    normal = [7.0 + rng.gauss(0, 0.1) for _ in range(69)]
    # given three hours where the pressure swings five times as widely as it used to
    put_hours(fleet_a.asset, "pressure_bar", [*normal, 7.0, 7.05, 6.95], spread=[0.5] * 69 + [2.5] * 3)
    summary = evaluate([fleet_a.asset.pk], NOW)
    (alarm,) = active(fleet_a.asset)
    assert summary.by_kind == {"anomaly": 1}
    assert alarm.kind == AlarmKind.ANOMALY
    assert "unlike its normal" in alarm.message
    # when it is back to normal for the next hours
    put_hours(fleet_a.asset, "pressure_bar", [7.0, 7.02, 6.98, 7.0], end=NOW + timedelta(hours=4), spread=0.5)
    evaluate([fleet_a.asset.pk], NOW + timedelta(hours=4))
    alarm.refresh_from_db()
    assert alarm.state == AlarmState.CLEARED
    assert alarm.cleared_reason == "readings normal again"


def test_nothing_is_raised_in_maintenance(fleet_a: Installed, temp_trend: HealthRule) -> None:
    window = MaintenanceWindow.objects.create(
        customer=fleet_a.asset.customer, title="Service", starts_at=NOW - timedelta(hours=1),
        ends_at=NOW + timedelta(hours=3),
    )  # fmt: skip
    window.assets.add(fleet_a.asset)
    put_hours(fleet_a.asset, "temp_c", [50 + 0.5 * i for i in range(48)])
    summary = evaluate([fleet_a.asset.pk], NOW)
    assert summary.suppressed == 1
    assert active(fleet_a.asset) == []
    # a proposed window (what a prediction suggests) is not in effect
    window.status = "proposed"
    window.save()
    assert evaluate([fleet_a.asset.pk], NOW).raised == 1


def test_the_score_is_lower_for_sooner_and_severer() -> None:
    def one(severity: str, hours: float) -> int:
        found = [{"kind": "trend", "severity": severity, "hours_to_limit": hours, "horizon_hours": 48}]
        return core.score(found)[0]

    assert core.score([]) == (100, "ok")
    assert one("warning", 40) > one("warning", 4) > one("critical", 4)
    assert core.score([{"kind": "anomaly", "severity": "critical"}] * 3) == (0, "critical")


def test_the_trend_of_a_short_series_says_nothing() -> None:
    hours = np.arange(-3.0, 0.0)
    assert core.trend(hours, hours * 10, limit=85, comparison="gt") is None


def test_the_api_shows_the_health_and_the_prediction(
    fleet_a: Installed, temp_trend: HealthRule, viewer_a: User, viewer_b: User
) -> None:
    put_hours(fleet_a.asset, "temp_c", [50 + 0.5 * i for i in range(48)])
    evaluate([fleet_a.asset.pk], NOW)
    url = f"/api/v1/assets/{fleet_a.asset.pk}/health/"
    body = client_for(viewer_a).get(url).json()
    assert body["score"] < 100
    assert body["risk"] in ("watch", "at_risk", "critical")
    (prediction,) = body["predictions"]
    assert prediction["kind"] == "prediction"
    assert prediction["expected_at"].startswith("2026-03-11")
    (rule,) = body["rules"]
    assert rule["active"] is True
    assert rule["forecast"][1][1] == 85.0
    # another customer's user: not found, like a missing asset
    assert client_for(viewer_b).get(url).status_code == 404


def test_an_asset_never_evaluated_reads_healthy(fleet_a: Installed, viewer_a: User) -> None:
    body = client_for(viewer_a).get(f"/api/v1/assets/{fleet_a.asset.pk}/health/").json()
    assert (body["score"], body["risk"], body["evaluated_at"], body["predictions"]) == (100, "ok", None, [])


def test_the_overview_and_the_api_sort_by_risk(
    customer_a: Customer, compressor: AssetModel, temp_trend: HealthRule, viewer_a: User
) -> None:
    # given three assets: one drifting fast, one drifting slowly, one never evaluated
    fast, slow, quiet = (install(customer_a, compressor, serial).asset for serial in ("R-1", "R-2", "R-3"))
    put_hours(fast, "temp_c", [60 + 0.9 * i for i in range(24)])  # 81.6 now, 85 in ~4 h
    put_hours(slow, "temp_c", [50 + 0.5 * i for i in range(48)])
    evaluate([fast.pk, slow.pk, quiet.pk], NOW)
    scores = dict(AssetHealth.objects.values_list("asset_id", "score"))
    assert scores[fast.pk] < scores[slow.pk] < 100
    client = client_for(viewer_a)
    # the page: by name unless asked, worst first with ?sort=risk
    page = client.get("/fleet/?sort=risk").content.decode()
    assert page.index("Asset R-1") < page.index("Asset R-2") < page.index("Asset R-3")
    assert 'data-risk="' in page
    default = client.get("/fleet/").content.decode()
    assert default.index("Asset R-1") < default.index("Asset R-2") < default.index("Asset R-3")
    # the API shares the filter
    names = [a["name"] for a in client.get("/api/v1/assets/?sort=risk").json()["results"]]
    assert names == ["Asset R-1", "Asset R-2", "Asset R-3"]
    assert client.get("/api/v1/assets/?sort=nonsense").status_code == 400


def test_the_demo_has_a_drifting_asset_with_a_prediction(
    db: None, django_capture_on_commit_callbacks: Any
) -> None:
    from io import StringIO

    from django.core.management import call_command

    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", stdout=StringIO())
    drifting = Asset.objects.get(serial_number="AC75-1002")
    (alarm,) = active(drifting)
    assert alarm.kind == AlarmKind.PREDICTION
    assert "Oil temperature predicted to exceed 95 °C" in alarm.message
    assert HealthRule.objects.filter(asset_model__code="hydro-p40", kind="anomaly").exists()


def test_a_rule_switched_off_clears_its_alarm_and_the_sweep_still_reaches_it(
    fleet_a: Installed, temp_trend: HealthRule
) -> None:
    from fleet.health.tasks import assets_with_rules

    put_hours(fleet_a.asset, "temp_c", [50 + 0.5 * i for i in range(48)])
    evaluate([fleet_a.asset.pk], NOW)
    (alarm,) = active(fleet_a.asset)
    # when the operator switches the rule off, the asset's model has no active rule left
    temp_trend.is_active = False
    temp_trend.save()
    assert assets_with_rules() == [str(fleet_a.asset.pk)]  # still swept: it has a health alarm
    summary = evaluate([fleet_a.asset.pk], NOW)
    alarm.refresh_from_db()
    assert summary.cleared == 1
    assert (alarm.state, alarm.cleared_reason) == ("cleared", "health rule no longer active")
    assert assets_with_rules() == []


def put_shift_hours(asset: Asset, running_levels: Sequence[float], *, seed: int, end: datetime = NOW) -> None:
    """A one-shift machine: hour rollups of `temp_c` and its `run_hours` counter, the last hour
    the one before `end`. From 06:00 to 22:00 UTC it runs (and pauses within the hour, so its
    hourly mean swings): its peaks are `running_levels` (one per hour); at night it stands idle
    at 47 °C and its counter does not advance."""
    rng = random.Random(seed)
    start = end - timedelta(hours=len(running_levels))
    rows = []
    for i, level in enumerate(running_levels):
        bucket = start + timedelta(hours=i)
        runs = 6 <= bucket.hour < 22
        share = rng.uniform(0.3, 1.0) if runs else 0.0  # of the hour it ran
        peak = level + abs(rng.gauss(0, 0.8)) if runs else 47.5
        mean = 47 + (peak - 47) * share
        common = {"customer_id": asset.customer_id, "asset": asset, "resolution": "hour", "bucket": bucket}
        rows.append(
            TelemetryRollup(**common, metric="temp_c", count=4, total=mean * 4, minimum=47.0, maximum=peak)
        )
        counter = 1000 + i
        rows.append(
            TelemetryRollup(
                **common, metric="run_hours", count=4, total=counter * 4, minimum=counter,
                maximum=counter + 0.75 * share,
            )
        )  # fmt: skip
    TelemetryRollup.objects.bulk_create(rows)


def test_a_one_shift_machine_starting_in_the_morning_is_no_trend(
    fleet_a: Installed, temp_trend: HealthRule
) -> None:
    # given two days of a healthy one-shift machine running at 75 °C, for many seeds and hours
    # of the day (its hourly means jump by 20 °C every morning)
    for seed in range(12):
        TelemetryRollup.objects.all().delete()
        end = NOW + timedelta(hours=2 * seed)
        put_shift_hours(fleet_a.asset, [75.0] * 48, seed=seed, end=end)
        evaluate([fleet_a.asset.pk], end)
        assert active(fleet_a.asset) == [], seed


def test_a_one_shift_machine_drifting_while_it_runs_is_predicted(
    fleet_a: Installed, temp_trend: HealthRule
) -> None:
    # given its running temperature rising 0.5 °C/h for two days: ~74 °C now, 85 °C in ~22 h
    put_shift_hours(fleet_a.asset, [50 + 0.5 * i for i in range(48)], seed=1)
    evaluate([fleet_a.asset.pk], NOW)
    (alarm,) = active(fleet_a.asset)
    assert alarm.kind == AlarmKind.PREDICTION
    assert alarm.expected_at is not None
    assert 12 < (alarm.expected_at - NOW).total_seconds() / 3600 < 30


def test_a_machine_repaired_after_its_trip_starts_clean(fleet_a: Installed, temp_trend: HealthRule) -> None:
    # given 40 h of drift towards the limit, then the trip, and 8 h running normally again
    levels = [60 + 0.6 * i for i in range(40)] + [62.0] * 8
    put_hours(fleet_a.asset, "temp_c", levels)
    AssetStatusChange.objects.create(
        customer_id=fleet_a.asset.customer_id, asset=fleet_a.asset, previous="fault", status="online",
        at=NOW - timedelta(hours=8),
    )  # fmt: skip
    # when
    evaluate([fleet_a.asset.pk], NOW)
    # then the drift it was repaired of is not a trend any more
    assert active(fleet_a.asset) == []
    # (without the repair the same hours would be a prediction: the fitted line is still rising)
    AssetStatusChange.objects.all().delete()
    evaluate([fleet_a.asset.pk], NOW)
    assert [a.kind for a in active(fleet_a.asset)] == [AlarmKind.PREDICTION]
