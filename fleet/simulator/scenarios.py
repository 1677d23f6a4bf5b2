"""Labelled degradation scenarios: ground truth for measuring predictive maintenance.

Each simulated machine follows one `Scenario`, which knows its label and, for a degradation,
the moment its fault occurs. `ScenarioSim` is a `DeviceSim` (same duty cycles, counters,
thermal lag and device contract) with the scenario laid over one gauge:

- **healthy**: ordinary duty cycles; some machines run one shift a day and stand idle at night.
- **drift**: a gauge (a clogging cooler's temperature) creeps from its usual running level to
  the limit; the fault occurs when the noise-free running level reaches the limit. The machine
  then trips (status `fault`) and, once repaired, runs as before.
- **vibration**: a worn bearing: the vibration level *and* its spread grow exponentially until
  the level reaches the limit; then the same trip and repair.
- **noisy**: a gauge read by a poor sensor: large noise (never past the limit), no trend. It
  must not alarm.

Everything is deterministic for a seed (`fleet_plan` and the sim's rng); no I/O, no database.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from fleet.simulator.machine import DeviceSim
from fleet.simulator.spec import PROFILES, Behaviour, DeviceSpec, Heartbeat, MetricSpec

# The rare events of DeviceSim made rarer and without outages or counter resets: the scenarios
# are about gauges, and a replay that is measured should not depend on the store-and-forward path.
SCENARIO_BEHAVIOUR = Behaviour(fault_per_hour=0.002, outage_per_hour=0.0, reset_per_hour=0.0)
REPAIR_HOURS = (4.0, 24.0)
NIGHT_HOURS = (22, 6)  # one-shift machines stand idle from 22:00 to 06:00 UTC
NOISY_SIGMA = 0.25  # noise of a noisy sensor, as a share of the gauge's half range (normal: 0.04)
NOISY_CLIP = 0.8  # ... clipped here, so even with the unit's offset it never reaches the limit
VIBRATION_GROWTH = 3.0  # exponent of the bearing's wear curve over its degradation


class Kind(StrEnum):
    HEALTHY = "healthy"
    DRIFT = "drift"
    VIBRATION = "vibration"
    NOISY = "noisy"


@dataclass(frozen=True)
class Scenario:
    """What one machine will do: its label, the gauge concerned and, for a degradation, when it
    begins and when its fault occurs (the noise-free running level reaches `limit`)."""

    kind: Kind
    metric: str | None = None
    limit: float | None = None
    onset: datetime | None = None
    fault_at: datetime | None = None
    repair_hours: float = 8.0
    one_shift: bool = False
    curve: float = 1.0  # drift: shape exponent of the creep (1 linear, > 1 accelerating)

    @property
    def degrading(self) -> bool:
        return self.kind in (Kind.DRIFT, Kind.VIBRATION)

    @property
    def repaired_at(self) -> datetime | None:
        return self.fault_at + timedelta(hours=self.repair_hours) if self.fault_at else None

    def progress(self, at: datetime) -> float:
        """How far the degradation has come at `at`: 0 before the onset (and after the repair),
        1 at the fault, then held until the repair."""
        if not self.degrading or self.onset is None or self.fault_at is None or at < self.onset:
            return 0.0
        assert self.repaired_at is not None
        if at >= self.repaired_at:
            return 0.0
        if at >= self.fault_at:
            return 1.0
        x = (at - self.onset) / (self.fault_at - self.onset)
        if self.kind == Kind.VIBRATION:
            return math.expm1(VIBRATION_GROWTH * x) / math.expm1(VIBRATION_GROWTH)
        return x**self.curve


@dataclass(frozen=True)
class Mix:
    """Shares of the fleet per scenario; the rest is healthy."""

    drift: float = 0.1
    vibration: float = 0.1
    noisy: float = 0.1
    one_shift: float = 0.3  # share of the healthy machines that run one shift a day


def fleet_plan(
    count: int,
    *,
    start: datetime,
    days: float,
    seed: int,
    mix: Mix | None = None,
    drift_metric: str = "temp_c",
    drift_limit: float = 85.0,
    vibration_metric: str = "vibration_mm_s",
    vibration_limit: float = 7.1,
    noisy_metric: str = "temp_c",
    degradation_days: tuple[float, float] = (3.0, 10.0),
    warmup_days: float = 10.0,
) -> list[Scenario]:
    """One scenario per machine, deterministic for `seed`. A degradation's fault falls between
    `warmup_days` (history a rule can learn the normal from) and a day before the end, so its
    trip is inside the run; its onset `degradation_days` before that (never before `start`)."""
    mix = mix or Mix()
    rng = random.Random(f"fleet-plan:{seed}")  # noqa: S311 - a simulation, not a secret
    kinds = (
        [Kind.DRIFT] * round(count * mix.drift)
        + [Kind.VIBRATION] * round(count * mix.vibration)
        + [Kind.NOISY] * round(count * mix.noisy)
    )[:count]
    kinds += [Kind.HEALTHY] * (count - len(kinds))
    rng.shuffle(kinds)
    last = max(warmup_days, days - 1.0)
    plan: list[Scenario] = []
    for kind in kinds:
        if kind in (Kind.DRIFT, Kind.VIBRATION):
            fault_at = start + timedelta(days=rng.uniform(min(warmup_days, last), last))
            onset = max(start, fault_at - timedelta(days=rng.uniform(*degradation_days)))
            metric, limit = (
                (drift_metric, drift_limit) if kind == Kind.DRIFT else (vibration_metric, vibration_limit)
            )
            plan.append(
                Scenario(
                    kind=kind,
                    metric=metric,
                    limit=limit,
                    onset=onset,
                    fault_at=fault_at,
                    repair_hours=rng.uniform(*REPAIR_HOURS),
                    curve=rng.uniform(1.0, 1.6) if kind == Kind.DRIFT else 1.0,
                )
            )
        elif kind == Kind.NOISY:
            plan.append(Scenario(kind=kind, metric=noisy_metric))
        else:
            plan.append(Scenario(kind=kind, one_shift=rng.random() < mix.one_shift))
    return plan


class ScenarioSim(DeviceSim):
    """A DeviceSim following a `Scenario`. Ticks must be given simulated time (in the past: the
    device clock is never ahead of the real one), one tick per heartbeat interval."""

    def __init__(self, spec: DeviceSpec, scenario: Scenario, *, rng: random.Random) -> None:
        self.scenario = scenario
        self._now: datetime | None = None
        self._now_before: datetime | None = None
        self._tripped = False
        super().__init__(
            spec,
            rng=rng,
            behaviour=SCENARIO_BEHAVIOUR,
            profile=PROFILES["aircomp-75"],
            nominal_step=float(spec.interval_seconds),
        )
        if scenario.metric is not None and scenario.metric not in self._offset:
            raise ValueError(f"{spec.model_code} has no gauge {scenario.metric}")

    # - ground truth -

    def running_level(self, code: str, at: datetime) -> float:
        """The noise-free value gauge `code` settles at while the machine runs, at `at`."""
        m = self._gauge(code)
        base = self._base(m)
        s = self.scenario
        if s.metric != code or not s.degrading:
            return base
        assert s.limit is not None
        return base + (s.limit - base) * s.progress(at)

    def noise_sigma(self, code: str, at: datetime) -> float:
        """The spread of a running reading of `code` around its level at `at`."""
        m = self._gauge(code)
        half = self._half(m)
        s = self.scenario
        if s.metric == code and s.kind == Kind.NOISY:
            return NOISY_SIGMA * half
        sigma = 0.04 * half
        if s.metric == code and s.kind == Kind.VIBRATION:
            # A worn bearing shakes more and less regularly: the spread grows with the level.
            sigma *= self.running_level(code, at) / self._base(m)
        return sigma

    # - DeviceSim hooks -

    def tick(self, now: datetime) -> Heartbeat:
        s = self.scenario
        self._now_before, self._now = self._now, now
        if s.fault_at is not None and not self._tripped and now >= s.fault_at:
            self._tripped = True
            assert s.repaired_at is not None
            # The tick advances the machine over the interval that ends now, fault included:
            # give the fault that interval too, so that it clears at the repair time.
            since = (now - self._now_before).total_seconds() if self._now_before else self.nominal_step
            left = (s.repaired_at - now).total_seconds() + min(since, 10 * self.nominal_step)
            if left > 0:
                self.begin_fault(self.rng.choice(self.profile.fault_codes), left)
        return super().tick(now)

    @property
    def running(self) -> bool:
        if not super().running:
            return False
        if self.scenario.one_shift and self._now is not None:
            night_from, night_to = NIGHT_HOURS
            return not (self._now.hour >= night_from or self._now.hour < night_to)
        return True

    def _target(self, m: MetricSpec) -> float:
        if not self.running or self._now is None:
            return super()._target(m)
        return self.running_level(m.code, self._now)

    def _noise(self, m: MetricSpec) -> float:
        s = self.scenario
        if self._now is None or s.metric != m.code or not self.running:
            return super()._noise(m)
        half = self._half(m)
        sigma = self.noise_sigma(m.code, self._now)
        if s.kind == Kind.NOISY:
            return max(-NOISY_CLIP * half, min(NOISY_CLIP * half, self.rng.gauss(0, sigma)))
        # A degradation's noise is bounded like DeviceSim's, relative to its own spread.
        return max(-3.75 * sigma, min(3.75 * sigma, self.rng.gauss(0, sigma)))

    def _gauge(self, code: str) -> MetricSpec:
        for m in self.gauges:
            if m.code == code:
                return m
        raise KeyError(code)
