"""One simulated machine and its gateway: `DeviceSim`, pure and deterministic for a given rng.

It runs and idles in duty cycles, accrues its counters while running, moves its gauges like a
thermal mass, and stages the rare events of its `Behaviour`: a fault, a network outage (the
heartbeats pile up in the outbox and are replayed, store-and-forward), a counter reset (board
swap) and, on one gauge of the fleet, a slow drift past its threshold.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from fleet.simulator.spec import (
    DEFAULT_PROFILE,
    DEFAULT_REST_FRACTION,
    IDLE_TAU,
    MAX_BATCH,
    PROFILES,
    REST_FRACTION,
    RUNNING_TAU,
    Behaviour,
    DeviceSpec,
    Heartbeat,
    MetricSpec,
    ModelProfile,
    utc_now,
)

# A gateway has finite flash: past this many buffered heartbeats the oldest are dropped, as
# real store-and-forward devices do, rather than growing without bound while the server is down.
MAX_OUTBOX = 50_000


@dataclass
class Drift:
    """A gauge creeping towards its threshold (a clogging oil cooler), then serviced."""

    code: str
    rate: float  # value units per simulated running hour (signed)
    peak: float  # the shift it stops at, a little past the threshold
    hold_hours: float
    shift: float = 0.0
    held_hours: float = 0.0

    def creep(self, hours: float) -> None:
        if abs(self.shift) < abs(self.peak):
            self.shift += self.rate * hours
            if abs(self.shift) >= abs(self.peak):
                self.shift = self.peak
            return
        self.held_hours += hours
        if self.held_hours >= self.hold_hours:
            # Serviced: the cooler is cleaned and the creep starts over.
            self.shift = 0.0
            self.held_hours = 0.0


@dataclass
class Fault:
    code: str
    seconds_left: float


class DeviceSim:
    """One machine and its gateway. Deterministic for a given `rng`; no I/O.

    Each `tick(now)` advances the machine by the real time since the previous tick times `speed`,
    appends the heartbeat it reports to `outbox` and returns it. The outbox is sent by whoever
    drives the sim (`next_batch` / `delivered`); during an outage `next_batch` is empty so
    heartbeats pile up and are replayed, oldest first, when the link comes back.
    """

    def __init__(
        self,
        spec: DeviceSpec,
        *,
        rng: random.Random,
        speed: float = 1.0,
        nominal_step: float | None = None,
        behaviour: Behaviour | None = None,
        drift_code: str | None = None,
        profile: ModelProfile | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.spec = spec
        self.rng = rng
        self.speed = speed
        # Simulated seconds a tick normally covers (real interval * speed): what the first tick
        # covers, having no predecessor to measure from, and (times 10) the bound on any later one.
        self.nominal_step = nominal_step if nominal_step is not None else float(spec.interval_seconds)
        self.behaviour = behaviour or Behaviour()
        self.profile = profile or PROFILES.get(spec.model_code, DEFAULT_PROFILE)
        self.clock = clock
        self.seq = spec.next_seq
        self.outbox: list[Heartbeat] = []
        self.dropped = 0
        self.reset_seqs: list[int] = []  # seqs at which counters deliberately restarted from 0

        self.gauges = [m for m in spec.metrics if not m.is_counter]
        self.counter_specs = [m for m in spec.metrics if m.is_counter]
        # Each unit runs a little differently from its siblings.
        self._offset = {m.code: rng.uniform(-0.15, 0.15) * self._half(m) for m in self.gauges}
        self._running = rng.random() < 0.6
        self._phase_left = 0.0
        self._load = 0.0
        self._cycles_per_minute = 0.0
        self._start_phase(running=self._running)
        self._phase_left *= rng.random()  # join the cycle somewhere in the middle
        self._fault: Fault | None = None
        self._outage_left = 0.0
        self._last_now: datetime | None = None
        self._last_ts: datetime | None = None

        self.counters: dict[str, float] = {}
        age_hours = rng.uniform(150, 4000)  # a rented machine is not new: plausible first readings
        for m in self.counter_specs:
            resumed = spec.counters.get(m.code)
            self.counters[m.code] = (
                resumed if resumed is not None else self._counter_per_hour(m.code) * age_hours
            )

        self.drift: Drift | None = None
        if drift_code is not None:
            self.drift = self._make_drift(drift_code)
        self._values = {m.code: self._target(m) for m in self.gauges}

    # - public -

    @property
    def online(self) -> bool:
        return self._outage_left <= 0

    @property
    def running(self) -> bool:
        return self._running and self._fault is None

    def tick(self, now: datetime) -> Heartbeat:
        """Advance to `now` (aware) and report: the next heartbeat, also kept in `outbox`."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if self._last_now is None:
            step = self.nominal_step
        else:
            step = max(0.0, (now - self._last_now).total_seconds()) * self.speed
            # A stalled process (laptop asleep) must not fast-forward days of run hours at once.
            step = min(step, 10 * self.nominal_step)
        self._last_now = now
        self._advance(step)
        self._roll_events(step)
        # ts is the device clock: never ahead of the real one (the server refuses > 5 min ahead,
        # and a simulated future would defeat that check), and never going backwards.
        ts = min(now, self.clock())
        if self._last_ts is not None and ts < self._last_ts:
            ts = self._last_ts
        self._last_ts = ts
        heartbeat = self._report(ts)
        self.seq += 1
        self.outbox.append(heartbeat)
        if len(self.outbox) > MAX_OUTBOX:
            overflow = len(self.outbox) - MAX_OUTBOX
            del self.outbox[:overflow]
            self.dropped += overflow
        return heartbeat

    def next_batch(self, limit: int = MAX_BATCH) -> list[Heartbeat]:
        """The oldest buffered heartbeats to send now (at most `limit`, ≤ 1000); none while offline."""
        if not self.online:
            return []
        return self.outbox[: max(1, min(limit, MAX_BATCH))]

    def delivered(self, count: int) -> None:
        """Forget the oldest `count` heartbeats: the server accepted (or definitively refused) them."""
        del self.outbox[:count]

    def begin_outage(self, seconds: float) -> None:
        """Lose the network for `seconds` of simulated time (also what the random outages call)."""
        self._outage_left = max(self._outage_left, seconds)

    def end_outage(self) -> None:
        self._outage_left = 0.0

    def begin_fault(self, code: str, seconds: float) -> None:
        """Trip: the machine stops and reports `fault` with `code` until the fault clears."""
        self._fault = Fault(code=code, seconds_left=seconds)

    def drift_from(self, code: str, *, level: float, per_hour: float) -> None:
        """Make gauge `code` run at `level` now and climb `per_hour` per running hour towards a
        little past its threshold (the demo's seeded drift, continued live)."""
        self.drift = self._make_drift(code)
        if self.drift is None:
            return
        m = self._gauge_spec(code)
        self.drift.shift = level - self._base(m)
        self.drift.rate = per_hour if self.drift.peak >= 0 else -abs(per_hour)
        if abs(self.drift.shift) > abs(self.drift.peak):
            self.drift.peak = self.drift.shift
        # At work, as it was in every hour of the seeded history: the level shows at once.
        self._start_phase(running=True)
        self._values[code] = self._target(m)

    def reset_counters(self) -> None:
        """A board swap: every counter restarts from 0 (the seq does not)."""
        for code in self.counters:
            self.counters[code] = 0.0
        self.reset_seqs.append(self.seq)

    # - the machine -

    def _start_phase(self, *, running: bool) -> None:
        self._running = running
        low, high = self.profile.run_minutes if running else self.profile.idle_minutes
        self._phase_left = self.rng.uniform(low, high) * 60
        # Load and cycle rate change from one run to the next, as demand does.
        self._load = self.rng.uniform(*self.profile.load)
        self._cycles_per_minute = self.rng.uniform(*self.profile.cycles_per_minute)

    def _advance(self, seconds: float) -> None:
        """Run the machine for `seconds`, switching phases where they end inside the step."""
        left = seconds
        while left > 0:
            timer = self._fault.seconds_left if self._fault is not None else self._phase_left
            segment = min(left, max(timer, 0.0))
            running = self.running
            if running:
                self._accrue(segment)
                if self.drift is not None:
                    self.drift.creep(segment / 3600)
            self._relax(segment, running=running)
            left -= segment
            if self._fault is not None:
                self._fault.seconds_left -= segment
                if self._fault.seconds_left <= 1e-9:
                    self._fault = None
                    self._start_phase(running=True)  # reset by the operator, back to work
            else:
                self._phase_left -= segment
                if self._phase_left <= 1e-9:
                    self._start_phase(running=not self._running)

    def _roll_events(self, seconds: float) -> None:
        hours = seconds / 3600
        b = self.behaviour
        if self._outage_left > 0:
            self._outage_left = max(0.0, self._outage_left - seconds)
        elif self._chance(b.outage_per_hour, hours):
            self.begin_outage(self.rng.uniform(*b.outage_minutes) * 60)
        if self.running and self._chance(b.fault_per_hour, hours):
            self.begin_fault(
                self.rng.choice(self.profile.fault_codes), self.rng.uniform(*b.fault_minutes) * 60
            )
        if self.counters and self._chance(b.reset_per_hour, hours):
            self.reset_counters()

    def _chance(self, per_hour: float, hours: float) -> bool:
        return per_hour > 0 and self.rng.random() < 1 - math.exp(-per_hour * hours)

    def _counter_per_hour(self, code: str) -> float:
        """How fast a counter grows per running hour, guessed from its code."""
        if "energy" in code or code.endswith("kwh"):
            return self.profile.rated_kw * (self._load or 0.7)
        if "cycle" in code:
            return (self._cycles_per_minute or 3.0) * 60
        return 1.0  # run_hours, and any other counter of running time

    def _accrue(self, seconds: float) -> None:
        hours = seconds / 3600
        for code in self.counters:
            self.counters[code] += self._counter_per_hour(code) * hours

    # - gauges -

    @staticmethod
    def _half(m: MetricSpec) -> float:
        low, high = m.working_range()
        return (high - low) / 2

    def _rest(self, m: MetricSpec) -> float:
        low, high = m.working_range()
        fraction = min(0.95, max(0.05, REST_FRACTION.get(m.code, DEFAULT_REST_FRACTION)))
        return low + fraction * (high - low)

    def _base(self, m: MetricSpec) -> float:
        low, high = m.working_range()
        return (low + high) / 2 + self._offset[m.code]

    def _target(self, m: MetricSpec) -> float:
        if not self.running:
            return self._rest(m)
        shift = self.drift.shift if self.drift is not None and self.drift.code == m.code else 0.0
        return self._base(m) + shift

    def _relax(self, seconds: float, *, running: bool) -> None:
        """First-order lag towards the target: readings move like a thermal mass, not in jumps."""
        keep = math.exp(-seconds / (RUNNING_TAU if running else IDLE_TAU))
        for m in self.gauges:
            target = self._target(m)
            self._values[m.code] = target + (self._values[m.code] - target) * keep

    def _noise(self, m: MetricSpec) -> float:
        # Bounded, so noise alone never leaves the normal range; warnings come from staged events.
        half = self._half(m)
        if not self.running:
            return self.rng.uniform(-0.02, 0.02) * half
        return max(-0.15 * half, min(0.15 * half, self.rng.gauss(0, 0.04 * half)))

    def _gauge_spec(self, code: str) -> MetricSpec:
        return next(g for g in self.gauges if g.code == code)

    def _make_drift(self, code: str) -> Drift | None:
        m = next((g for g in self.gauges if g.code == code), None)
        if m is None or (m.normal_max is None and m.normal_min is None):
            return None
        low, high = m.working_range()
        # Towards the upper bound where there is one (hotter, faster, shakier), else the lower.
        threshold, sign = (high, 1.0) if m.normal_max is not None else (low, -1.0)
        needed = threshold - self._base(m)
        # Past the threshold by more than the noise bound, so the warning is steady, not flapping.
        peak = needed + sign * 0.1 * (high - low)
        rate = needed / max(self.behaviour.drift_hours, 1e-6)
        return Drift(code=code, rate=rate, peak=peak, hold_hours=self.behaviour.drift_hold_hours)

    # - the heartbeat -

    def _report(self, ts: datetime) -> Heartbeat:
        metrics: dict[str, float | int] = {}
        for m in self.counter_specs:
            value = self.counters[m.code]
            # Rounding is monotonic, so a rounded counter still never goes down between resets.
            metrics[m.code] = math.floor(value) if "cycle" in m.code else round(value, 4)
        abnormal = False
        for m in self.gauges:
            value = round(self._values[m.code] + self._noise(m), 3)
            metrics[m.code] = value
            abnormal = abnormal or m.is_abnormal(value)
        if self._fault is not None:
            status, fault_code = "fault", self._fault.code
        else:
            status, fault_code = ("warning" if abnormal else "ok"), None
        return {
            "seq": self.seq,
            "ts": ts.astimezone(UTC).isoformat(timespec="milliseconds"),
            "status": status,
            "metrics": metrics,
            "fault_code": fault_code,
        }


def drift_pick(specs: Sequence[DeviceSpec], rng: random.Random) -> tuple[str, str] | None:
    """(device id, gauge code) for the one slow drift, preferring a temperature with an upper bound."""
    candidates = [
        (s.device_id, m.code)
        for s in specs
        for m in s.metrics
        if not m.is_counter and m.normal_max is not None
    ]
    hot = [c for c in candidates if "temp" in c[1]]
    pool = hot or candidates
    return rng.choice(pool) if pool else None
