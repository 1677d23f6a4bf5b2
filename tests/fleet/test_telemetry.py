"""Telemetry: rollups written by the worker, series at each resolution, bounded, scoped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fleet import telemetry
from fleet.ingest import worker
from fleet.models import IngestInbox, TelemetryRollup
from portal.models import User
from tests.conftest import client_for
from tests.fleet.conftest import Installed

# The start of an hour, so readings a minute or two apart share their hour bucket.
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)


def feed(installed: Installed, temps: list[tuple[int, float]], first_seq: int = 0) -> None:
    items = [
        {"seq": first_seq + i, "ts": (T0 + timedelta(seconds=s)).isoformat(), "status": "ok",
         "fault_code": "", "metrics": {"temp_c": t}}
        for i, (s, t) in enumerate(temps)
    ]  # fmt: skip
    IngestInbox.objects.create(device_id=installed.device.pk, count=len(items), items=items)
    worker.drain()


@pytest.fixture(params=["arrays", "copy"])
def rollup_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways a batch sends its rollups: as arrays (small batches), COPYed (large ones)."""
    monkeypatch.setattr(telemetry, "COPY_FROM", 10**9 if request.param == "arrays" else 0)
    return str(request.param)


def test_rollups_hold_min_avg_max_per_bucket_and_ignore_duplicates(
    fleet_a: Installed, rollup_path: str
) -> None:
    feed(fleet_a, [(0, 60.0), (20, 64.0), (40, 62.0), (70, 50.0)])
    feed(fleet_a, [(0, 60.0), (20, 64.0)])  # the same seqs again: duplicates change nothing
    minute = TelemetryRollup.objects.get(asset=fleet_a.asset, metric="temp_c", resolution="minute", bucket=T0)
    assert (minute.count, minute.minimum, minute.maximum, minute.total) == (3, 60.0, 64.0, 186.0)
    hour = TelemetryRollup.objects.get(asset=fleet_a.asset, metric="temp_c", resolution="hour")
    assert (hour.count, hour.minimum, hour.maximum) == (4, 50.0, 64.0)


def test_a_late_reading_lands_in_its_own_bucket(fleet_a: Installed, rollup_path: str) -> None:
    feed(fleet_a, [(3600, 70.0)], first_seq=10)
    feed(fleet_a, [(0, 40.0)], first_seq=1)
    buckets = dict(
        TelemetryRollup.objects.filter(asset=fleet_a.asset, resolution="hour").values_list(
            "bucket", "maximum"
        )
    )
    assert buckets == {T0.replace(minute=0): 40.0, (T0 + timedelta(hours=1)).replace(minute=0): 70.0}


def test_series_by_resolution_through_the_api(viewer_a: User, fleet_a: Installed) -> None:
    feed(fleet_a, [(s, 60.0 + s / 60) for s in range(0, 7200, 30)])
    client = client_for(viewer_a)
    url = f"/api/v1/assets/{fleet_a.asset.pk}/telemetry/"
    window = {"metric": "temp_c", "from": T0.isoformat(), "to": (T0 + timedelta(hours=2)).isoformat()}
    raw = client.get(url, {**window, "resolution": "raw"}).json()
    assert len(raw["points"]) == 240
    assert raw["points"][0]["value"] == 60.0
    minutes = client.get(url, {**window, "resolution": "minute"}).json()
    assert len(minutes["points"]) == 120
    second = minutes["points"][1]
    assert datetime.fromisoformat(second.pop("t")) == T0 + timedelta(minutes=1)  # shown in the user's zone
    assert second == {"min": 61.0, "avg": 61.25, "max": 61.5, "count": 2}
    hours = client.get(url, {**window, "resolution": "hour"}).json()
    assert sum(p["count"] for p in hours["points"]) == 240
    auto = client.get(url, window).json()
    assert auto["resolution"] == "raw"
    assert "from" in auto


def test_series_stay_bounded_and_validate(viewer_a: User, fleet_a: Installed) -> None:
    client = client_for(viewer_a)
    url = f"/api/v1/assets/{fleet_a.asset.pk}/telemetry/"
    year = {"metric": "temp_c", "from": "2025-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}
    assert client.get(url, {**year, "resolution": "minute"}).status_code == 400
    assert client.get(url, year).json()["resolution"] == "day"
    assert client.get(url, {"metric": "rpm"}).status_code == 400
    assert client.get(url, {"metric": "temp_c", "resolution": "week"}).status_code == 400
    assert client.get(url, {**year, "from": "2027-01-01T00:00:00Z"}).status_code == 400


@pytest.mark.parametrize(
    ("hours", "expected"), [(1, "raw"), (2, "raw"), (24, "minute"), (24 * 60, "hour"), (24 * 400, "day")]
)
def test_the_default_resolution_fits_the_range(hours: int, expected: str) -> None:
    assert telemetry.pick_resolution(T0, T0 + timedelta(hours=hours)) == expected


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
@pytest.mark.parametrize("resolution", ["raw", "minute", "hour"])
def test_the_series_answer_is_what_its_serializer_writes(
    fleet_a: Installed, zone: str, resolution: str
) -> None:
    """The endpoint builds its JSON without a serializer per point (docs/performance.md, S5): the
    same bytes as `TelemetrySeriesSerializer`, key order, the user's zone and "Z" for UTC included."""
    from django.utils import timezone
    from rest_framework.renderers import JSONRenderer

    from fleet.api.serializers import TelemetrySeriesSerializer, telemetry_series_data

    feed(fleet_a, [(s, 60.0 + s / 70) for s in range(0, 7200, 45)])
    series = telemetry.series(
        asset=fleet_a.asset, metric="temp_c", start=T0, end=T0 + timedelta(hours=2), resolution=resolution
    )
    assert len(series["points"]) > 1
    with timezone.override(zone):
        expected = JSONRenderer().render(TelemetrySeriesSerializer(series).data)
        assert JSONRenderer().render(telemetry_series_data(series)) == expected
    assert (b'Z"' in expected) == (zone == "UTC")
