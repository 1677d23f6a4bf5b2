"""Properties of the health rules' pure core (fleet/health/rules.py): no database."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from fleet.health import rules as core

HOURS = np.arange(-48, 0) + 0.5

severities = st.sampled_from(["info", "warning", "critical"])


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    start=st.floats(-50, 200),
    slope=st.floats(0.05, 5),
    gap=st.floats(1, 200),
    upward=st.booleans(),
)
def test_a_clean_line_predicts_its_own_crossing(start: float, slope: float, gap: float, upward: bool) -> None:
    # given a noiseless line heading for a limit `gap` away from where it is now
    sign = 1 if upward else -1
    values = start + sign * slope * HOURS
    limit = start + sign * gap
    # when
    verdict = core.trend_recent(HOURS, values, limit=limit, comparison="gt" if upward else "lt")
    # then it is confident and says when: gap / slope hours
    assert verdict is not None
    assert verdict.confident
    assert verdict.hours_to_limit is not None
    assert abs(verdict.hours_to_limit - gap / slope) < 1e-6 * max(1.0, gap / slope)


@hypothesis_settings(max_examples=100, deadline=None)
@given(start=st.floats(-50, 200), slope=st.floats(0.05, 5), gap=st.floats(1, 200))
def test_a_line_heading_away_predicts_nothing(start: float, slope: float, gap: float) -> None:
    values = start - slope * HOURS * -1  # rising
    verdict = core.trend_recent(HOURS, values, limit=start - gap, comparison="lt")  # bad side: below
    assert verdict is not None
    assert verdict.hours_to_limit is None


@hypothesis_settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), noise=st.floats(0.1, 10), headroom=st.floats(3, 8))
def test_white_noise_predicts_no_crossing_within_a_day(seed: int, noise: float, headroom: float) -> None:
    # a flat sensor whose hour means are `headroom` standard deviations under its limit (at 3,
    # one hour in 700 is past it already): the line must not head there within a day
    rng = np.random.default_rng(seed)
    values = 70 + rng.normal(0, noise, len(HOURS))
    verdict = core.trend_recent(HOURS, values, limit=70 + headroom * noise, comparison="gt")
    assert verdict is not None
    late = verdict.hours_to_limit_late
    assert not (verdict.confident and late is not None and late <= 24)


@given(st.lists(st.tuples(severities, st.floats(0, 100), st.booleans()), max_size=6))
def test_the_score_is_in_range_and_never_rises_with_another_finding(
    found: list[tuple[str, float, bool]],
) -> None:
    findings = [
        {"kind": "trend" if trend else "anomaly", "severity": s, "hours_to_limit": h, "horizon_hours": 48}
        for s, h, trend in found
    ]
    score, risk = core.score(findings)
    assert 0 <= score <= 100
    assert (score == 100) == (risk == "ok") == (not findings)
    if findings:
        fewer, _ = core.score(findings[:-1])
        assert score <= fewer


def test_a_machine_with_two_states_is_normal_at_its_switch_hours() -> None:
    # a week of one shift a day: idle nights (small spread), running days, and the two switch
    # hours a day with the widest spread of all; the last three hours are a switch
    hours = np.arange(-168, 0) + 0.5
    clock = (hours.astype(int) % 24 + 24) % 24
    spreads = np.where((clock >= 6) & (clock < 22), 4.0, 0.5)
    spreads[(clock == 6) | (clock == 22)] = 30.0
    means = np.where(spreads > 1, 70.0, 40.0)
    spreads[-3:] = [30.0, 29.0, 31.0]
    verdict = core.anomaly(hours, means, spreads, recent_hours=3)
    assert verdict is not None
    assert verdict.z < 4
    # while a spread three times the widest normal one is unlike it
    spreads[-3:] = 90.0
    verdict = core.anomaly(hours, means, spreads, recent_hours=3)
    assert verdict is not None
    assert verdict.z > 4
