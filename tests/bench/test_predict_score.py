"""bench/_predict_score.py: how bench/predict.py turns warnings and the plan into its figures."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fleet.simulator.scenarios import Kind, Scenario

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from _predict_score import score

T0 = datetime(2026, 10, 1, tzinfo=UTC)
H = timedelta(hours=1)
WINDOW = 96 * H


def at(hours: float) -> datetime:
    return T0 + hours * H


def drift(fault_hours: float, repair_hours: float = 8) -> Scenario:
    return Scenario(
        kind=Kind.DRIFT,
        metric="temp_c",
        limit=85.0,
        onset=at(fault_hours - 120),
        fault_at=at(fault_hours),
        repair_hours=repair_hours,
    )


def test_warnings_in_the_window_count_with_their_lead_and_everything_else_is_false() -> None:
    # given two drifts failing at hour 200, a healthy and a noisy machine, evaluated every 6 h
    plan = [drift(200), drift(200), Scenario(kind=Kind.HEALTHY), Scenario(kind=Kind.NOISY, metric="temp_c")]
    evaluations = [at(h) for h in range(0, 241, 6)]
    warned: dict[datetime, set[int]] = {e: set() for e in evaluations}
    # asset 0: warned from hour 174 (26 h ahead) until its fault, again during it (not counted)
    for h in range(174, 211, 6):
        warned[at(h)].add(0)
    # asset 1: an early episode at hour 60 (140 h ahead, outside the 96-h window), one after its
    # repair at hour 216; never inside its window
    warned[at(60)].add(1)
    warned[at(216)].add(1)
    # asset 2 (healthy): one episode over three evaluations; asset 3 (noisy): two episodes
    for h in (30, 36, 42):
        warned[at(h)].add(2)
    warned[at(90)].add(3)
    warned[at(102)].add(3)

    figures = score(plan, evaluations, warned, window=WINDOW)

    assert figures["degradations"] == 2
    assert figures["warned_before_fault"] == 1
    assert figures["warned_share"] == 0.5
    assert figures["median_lead_hours"] == 26.0
    assert figures["false_warnings_by"] == {
        "drift_after_repair": 1,
        "drift_early": 1,
        "healthy": 1,
        "noisy": 2,
    }
    assert figures["false_warnings"] == 5
    # 4 assets over the 10 days evaluated: 5 false episodes per 40 asset-days
    assert figures["asset_days"] == 40.0
    assert figures["false_warnings_per_100_asset_days"] == 12.5
    assert figures["per_scenario"]["drift"] == {
        "assets": 2,
        "degradations": 2,
        "warned": 1,
        "median_lead_hours": 26.0,
        "false_warnings": 2,
    }
