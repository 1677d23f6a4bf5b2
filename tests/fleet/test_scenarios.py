"""Labelled scenarios (fleet/simulator/scenarios.py): each label and fault time agree with the
readings the machine produces, and a seed makes them repeatable. Pure: no database."""

from __future__ import annotations

import itertools
import random
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from scipy import stats

from fleet.simulator.scenarios import Kind, Scenario, ScenarioSim, fleet_plan
from fleet.simulator.spec import DeviceSpec, MetricSpec

START = datetime(2026, 9, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)
DAYS = 30
METRICS = (
    MetricSpec("energy_kwh", "counter"),
    MetricSpec("pressure_bar", "gauge", 5.5, 8.5),
    MetricSpec("run_hours", "counter"),
    MetricSpec("temp_c", "gauge", 40.0, 85.0),
    MetricSpec("vibration_mm_s", "gauge", 0.3, 7.1),
)
SPEC = DeviceSpec("dev-1", "GW-1", "predict-compressor", 900, METRICS)


def plan(count: int = 200, seed: int = 3) -> list[Scenario]:
    return fleet_plan(count, start=START, days=DAYS, seed=seed)


def replay(scenario: Scenario, seed: int = 1, days: float = DAYS) -> list[tuple[datetime, dict[str, Any]]]:
    sim = ScenarioSim(SPEC, scenario, rng=random.Random(seed))
    ticks = int(days * 86400 / STEP.total_seconds())
    return [(START + STEP * i, sim.tick(START + STEP * i)) for i in range(ticks)]


def running(
    beats: list[tuple[datetime, dict[str, Any]]], code: str, low: datetime, high: datetime
) -> list[float]:
    """Readings of `code` while the machine ran steadily (not in a fault) between low and high."""
    return [hb["metrics"][code] for at, hb in beats if low <= at < high and hb["status"] != "fault"]


def first_of(kind: Kind, scenarios: list[Scenario]) -> Scenario:
    return next(s for s in scenarios if s.kind == kind)


def test_the_plan_labels_the_mix_and_puts_every_fault_inside_the_run() -> None:
    scenarios = plan()
    kinds = {kind: sum(1 for s in scenarios if s.kind == kind) for kind in Kind}
    assert kinds == {Kind.DRIFT: 20, Kind.VIBRATION: 20, Kind.NOISY: 20, Kind.HEALTHY: 140}
    for s in scenarios:
        if s.degrading:
            assert s.onset is not None
            assert s.fault_at is not None
            assert s.limit is not None
            assert START <= s.onset < s.fault_at <= START + timedelta(days=DAYS - 1)
            assert s.progress(s.onset) == 0
            assert s.progress(s.fault_at) == 1
        else:
            assert s.fault_at is None
            assert s.repaired_at is None


def test_a_seed_makes_plan_and_readings_repeatable_and_another_seed_does_not() -> None:
    assert plan(seed=3) == plan(seed=3)
    assert plan(seed=3) != plan(seed=4)
    drift = first_of(Kind.DRIFT, plan())
    assert replay(drift, seed=9, days=3) == replay(drift, seed=9, days=3)
    assert replay(drift, seed=9, days=3) != replay(drift, seed=10, days=3)


@pytest.mark.parametrize("kind", [Kind.DRIFT, Kind.VIBRATION])
def test_a_degradation_reaches_its_limit_at_the_fault_time_and_trips_then(kind: Kind) -> None:
    # given a degrading machine
    s = first_of(kind, plan())
    assert s.fault_at is not None
    assert s.onset is not None
    assert s.limit is not None
    assert s.metric
    assert s.repaired_at is not None
    sim = ScenarioSim(SPEC, s, rng=random.Random(2))

    # then its noise-free running level rises steadily from its usual level to the limit, which
    # it reaches exactly at the fault time and not a quarter of an hour before
    levels = [sim.running_level(s.metric, s.onset + (s.fault_at - s.onset) * i / 50) for i in range(51)]
    assert all(a <= b for a, b in itertools.pairwise(levels))
    assert levels[0] < s.limit * 0.8
    assert sim.running_level(s.metric, s.fault_at) == pytest.approx(s.limit)
    assert sim.running_level(s.metric, s.fault_at - STEP) < s.limit

    # when it runs through its fault
    beats = replay(s)

    # then the readings of its last running hours before the fault are close to the limit
    # (never far past it), those of the week before the onset are near its usual level,
    late = running(beats, s.metric, s.fault_at - timedelta(hours=3), s.fault_at)
    assert late
    assert max(late) > s.limit * 0.9
    assert max(late) < s.limit * 1.1
    usual = running(beats, s.metric, s.onset - timedelta(days=7), s.onset)
    if usual:
        assert max(usual) < s.limit * 0.8
    # and it reports a fault from the fault time until its repair, then runs again
    statuses = {at: hb["status"] for at, hb in beats}
    assert all(statuses[at] == "fault" for at in statuses if s.fault_at <= at < s.repaired_at)
    assert any(status == "fault" for at, status in statuses.items() if at >= s.fault_at)
    after = [status for at, status in statuses.items() if at >= s.repaired_at + STEP]
    assert not after or after.count("fault") < len(after) / 2


def test_growing_vibration_also_spreads_wider() -> None:
    s = first_of(Kind.VIBRATION, plan())
    assert s.fault_at is not None
    assert s.onset is not None
    sim = ScenarioSim(SPEC, s, rng=random.Random(2))
    assert sim.noise_sigma("vibration_mm_s", s.fault_at) > 1.5 * sim.noise_sigma("vibration_mm_s", s.onset)


def test_the_noisy_sensor_is_noisy_but_has_no_trend_and_never_reaches_its_limit() -> None:
    # given a machine whose temperature sensor is noisy, and the same machine (same seed: the
    # same duty cycles) with a good sensor
    s = first_of(Kind.NOISY, plan())
    beats = replay(s)
    good = replay(Scenario(kind=Kind.HEALTHY))
    temps = [hb["metrics"]["temp_c"] for _, hb in beats]

    # then its readings differ from the good sensor's by far more than a good sensor's noise ...
    sim = ScenarioSim(SPEC, Scenario(kind=Kind.HEALTHY), rng=random.Random(1))
    differences = [
        hb["metrics"]["temp_c"] - other["metrics"]["temp_c"]
        for (_, hb), (_, other) in zip(beats, good, strict=True)
        if hb["status"] == "ok"
    ]
    assert statistics.stdev(differences) > 3 * sim.noise_sigma("temp_c", START)
    # ... never past its limit, so it reports no warning ...
    assert max(temps) < 85.0
    assert all(hb["status"] != "warning" for _, hb in beats)
    # ... and over the month its running readings have no trend: the Theil–Sen slope's 95 %
    # interval holds zero
    hours = [(at - START).total_seconds() / 3600 for at, hb in beats if hb["status"] != "fault"]
    values = [hb["metrics"]["temp_c"] for _, hb in beats if hb["status"] != "fault"]
    _, _, low, high = stats.theilslopes(values, hours)
    assert low <= 0 <= high or abs(high - low) < 1e-3


def test_ordinary_duty_cycles_stay_in_the_normal_range_and_one_shift_machines_rest_at_night() -> None:
    for one_shift in (False, True):
        # given a healthy machine on continuous duty, and one that runs one shift a day
        beats = replay(Scenario(kind=Kind.HEALTHY, one_shift=one_shift), seed=5)

        # then every gauge stays inside its normal range, and it reports no warning
        for _, hb in beats:
            for m in METRICS:
                if not m.is_counter:
                    assert m.normal_min is not None
                    assert m.normal_max is not None
                    assert m.normal_min <= hb["metrics"][m.code] <= m.normal_max, (m.code, hb)
            assert hb["status"] != "warning"
        # and it both runs and rests (run hours grow on some ticks and not on others)
        grows = [
            b["metrics"]["run_hours"] > a["metrics"]["run_hours"]
            for (_, a), (_, b) in itertools.pairwise(beats)
        ]
        assert any(grows)
        assert not all(grows)
        night = [
            b["metrics"]["run_hours"] - a["metrics"]["run_hours"]
            for (_, a), (at, b) in itertools.pairwise(beats)
            if at.hour in (0, 1, 2, 3, 4)
        ]
        if one_shift:
            assert max(night) == 0
        else:
            assert max(night) > 0
