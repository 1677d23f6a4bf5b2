"""The pure core of the health rules: numbers in, verdicts out — no database (docs/health.md).

A series is an asset's hour (or minute) aggregates of one metric: bucket times as hours
relative to `now` (negative: the past), each bucket's mean and its range (max − min).

- **Trend**: the Theil–Sen slope (`scipy.stats.theilslopes`, the median of pairwise slopes:
  a third of the points can be wild without moving it) with its confidence interval. A rule
  predicts only when the whole interval points toward the limit (a flat noisy sensor's
  interval straddles zero), and then says when the fitted line crosses the limit.
- **Anomaly**: robust z-scores (median and `scipy.stats.median_abs_deviation`) of the recent
  buckets' mean and range against the asset's own earlier buckets: a level unlike its normal,
  or a spread (growing vibration) unlike its normal.
- **Score**: 100 less a penalty per active finding, larger for a severer one and for a crossing
  sooner within the horizon; the risk level is read from the score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

# Fewer points than this and a rule says nothing: a line through a handful of hours is noise.
MIN_POINTS = 6


@dataclass(frozen=True)
class TrendVerdict:
    slope_per_hour: float
    slope_low: float
    slope_high: float
    level: float  # the fitted value now
    hours_to_limit: float | None  # None: not heading for the limit (or not confidently)
    # The same with the slope's bound nearest zero: the latest the interval allows. A rule
    # raises on this one, so a slope that only just clears zero does not predict tomorrow.
    hours_to_limit_late: float | None
    confident: bool
    points: int


@dataclass(frozen=True)
class AnomalyVerdict:
    z_level: float
    z_spread: float
    z: float  # the larger of the two
    baseline: float
    recent: float
    points: int


def _heading(comparison: str) -> int:
    """+1 when the bad side is above the limit (gt/gte), −1 when below."""
    return 1 if comparison in ("gt", "gte") else -1


def trend(
    hours: np.ndarray, values: np.ndarray, *, limit: float, comparison: str, confidence: float = 0.95
) -> TrendVerdict | None:
    """Where the series is heading and in how many hours the fitted line crosses `limit` on
    the bad side of `comparison`. 0 hours when the fitted level is past it already."""
    keep = np.isfinite(values)
    hours, values = hours[keep], values[keep]
    if len(values) < MIN_POINTS or np.ptp(hours) <= 0:
        return None
    slope, intercept, low, high = stats.theilslopes(values, hours, alpha=confidence)
    direction = _heading(comparison)
    level = float(intercept)  # hours are relative to now: the line's value at 0
    # Confident only when the whole interval points toward the limit.
    confident = bool(low > 0) if direction > 0 else bool(high < 0)
    hours_to: float | None = None
    late: float | None = None
    gap = (limit - level) * direction  # how far it still has to go, > 0 when not past yet
    if gap <= 0:
        hours_to = late = 0.0
    elif confident and slope * direction > 0:
        hours_to = float(gap / abs(slope))
        late = float(gap / min(abs(low), abs(high)))
    return TrendVerdict(
        slope_per_hour=float(slope), slope_low=float(low), slope_high=float(high), level=level,
        hours_to_limit=hours_to, hours_to_limit_late=late, confident=confident, points=len(values),
    )  # fmt: skip


def trend_recent(
    hours: np.ndarray,
    values: np.ndarray,
    *,
    limit: float,
    comparison: str,
    confidence: float = 0.95,
    recent_share: float = 0.25,
) -> TrendVerdict | None:
    """`trend` over the whole series and over its most recent `recent_share` (at least
    MIN_POINTS buckets); the sooner confident crossing wins. Theil–Sen over days is deaf to an
    acceleration of the last hours (a failing bearing heats faster and faster); the short fit
    hears it, and its fewer points give it a wider interval, so noise does not pass for it.
    "Sooner" is by the late crossing (the slope bound nearest zero), the one a rule raises on."""
    whole = trend(hours, values, limit=limit, comparison=comparison, confidence=confidence)
    if whole is None or len(hours) < MIN_POINTS * 2:
        return whole
    span = max(float(-hours.min()) * recent_share, 0.0)
    recent = hours >= -span
    if recent.sum() < MIN_POINTS:
        recent = hours >= np.sort(hours)[-MIN_POINTS]
    # A stricter interval for the short fit: two looks at the data, and the short one is the
    # one noise fools (a 12-point 95 % interval misses zero by chance once in 40 windows).
    strict = 1 - (1 - confidence) / 5
    short = trend(hours[recent], values[recent], limit=limit, comparison=comparison, confidence=strict)
    if short is None or short.hours_to_limit_late is None:
        return whole
    if whole.hours_to_limit_late is None or short.hours_to_limit_late < whole.hours_to_limit_late:
        return short
    return whole


def _robust_z(baseline: np.ndarray, recent: np.ndarray, floor: float) -> tuple[float, float, float]:
    """How far the recent mean lies *outside* the baseline's 5–95 % range, in robust standard
    deviations (MAD): 0 inside it. Measured from the range rather than the median because a
    machine's normal is often two states (running and idle, one shift a day): their switch
    hours are part of normal, and a median-centred score took them for anomalies."""
    centre = float(np.median(baseline))
    low, high = np.percentile(baseline, [5, 95])
    scale = float(stats.median_abs_deviation(baseline, scale="normal"))
    scale = max(scale, floor, 1e-9)
    now = float(np.mean(recent))
    beyond = max(now - float(high), float(low) - now, 0.0)
    return beyond / scale, centre, now


def anomaly(
    hours: np.ndarray,
    means: np.ndarray,
    spreads: np.ndarray,
    *,
    recent_hours: float = 3.0,
    min_scale: float = 0.0,
) -> AnomalyVerdict | None:
    """How unlike the asset's own earlier buckets (its normal) the last `recent_hours` are,
    in robust z-scores of the mean and of the spread. `min_scale` floors the spread of
    normal, so a sensor that read exactly the same for days is not alarmed by a rounding."""
    keep = np.isfinite(means) & np.isfinite(spreads)
    hours, means, spreads = hours[keep], means[keep], spreads[keep]
    recent = hours > -recent_hours
    if recent.sum() < 1 or (~recent).sum() < MIN_POINTS * 2:
        return None
    floor = max(min_scale, 1e-3 * float(np.median(np.abs(means[~recent]))))
    z_level, baseline, now = _robust_z(means[~recent], means[recent], floor)
    z_spread, _, _ = _robust_z(spreads[~recent], spreads[recent], floor)
    return AnomalyVerdict(
        z_level=z_level, z_spread=z_spread, z=max(z_level, z_spread), baseline=baseline, recent=now,
        points=len(means),
    )  # fmt: skip


SEVERITY_PENALTY = {"info": 10, "warning": 25, "critical": 45}


def score(findings: list[dict[str, Any]]) -> tuple[int, str]:
    """(score 0–100, risk level) from the active findings: each {"kind", "severity",
    "hours_to_limit" (trend), "horizon_hours"}. A crossing at the end of the horizon costs the
    severity's penalty, one due now twice that; an anomaly costs the penalty."""
    penalty = 0.0
    for finding in findings:
        base = SEVERITY_PENALTY.get(finding.get("severity", "warning"), 25)
        if finding.get("kind") == "trend":
            horizon = max(float(finding.get("horizon_hours") or 1), 1.0)
            left = min(max(float(finding.get("hours_to_limit") or 0.0), 0.0), horizon)
            penalty += base * (2 - left / horizon)
        else:
            penalty += base
    value = max(0, min(100, round(100 - penalty)))
    if value >= 100:
        risk = "ok"
    elif value >= 70:
        risk = "watch"
    elif value >= 40:
        risk = "at_risk"
    else:
        risk = "critical"
    return value, risk
