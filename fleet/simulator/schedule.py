"""The demo's schedule: what the fleet does in the first minutes of `make run`, and after.

Poisson-rare faults and outages (spec.Behaviour) make a believable fleet over days, but a
person trying the demo for five minutes saw none. `demo_schedule` stages them instead, in real
seconds after the simulator starts, deterministic for a seed:

- 0:45  a fault on a compressor at Acme: a `device_fault` alarm, which opens a P2 ticket;
- 1:00  an outage of Acme's pump: nothing heard for 4 minutes, so the offline sweep marks it
        offline (3 heartbeat intervals, ~1.5 min) and it replays what it buffered when it
        comes back;
- 2:30  a fault on a chiller at Borealis (the other customer's ticket queue fills too);
- from the start, the drift: the compressor whose oil temperature `seed_demo` has been
  creeping up for three days (fleet.demo.DRIFTING) goes on creeping from there, so the health
  rules' first evaluation of live data (make run sets HEALTH_EVAL_INTERVAL_SECONDS to 120 s)
  keeps predicting its crossing instead of calling the trend recovered.

Then every `period` a fault and an outage on machines picked with the seed (never the
drifting one: its stop would start its trend over, docs/health.md "A clean start").
Pure: no I/O, no clock; `FleetRunner` asks `due(since, until)` as time passes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from fleet.demo import DRIFTING
from fleet.simulator.spec import DEFAULT_PROFILE, PROFILES


class Happens(StrEnum):
    FAULT = "fault"
    OUTAGE = "outage"


@dataclass(frozen=True)
class Happening:
    """Something staged `at` real seconds after the start, on the machine with serial `serial`,
    lasting `seconds` real seconds; a fault reports `code`."""

    at: float
    serial: str
    what: Happens
    seconds: float
    code: str = ""


# The first cycle, on the demo's own machines (asset serials, fleet.demo.ASSETS).
FIRST = (
    Happening(45, "AC75-1001", Happens.FAULT, 240, "E-OVERHEAT"),
    Happening(60, "HP40-3001", Happens.OUTAGE, 240),
    Happening(150, "FL200-2101", Happens.FAULT, 300, "E-HIGH-PRESSURE"),
)
PERIOD = 20 * 60.0  # seconds between later rounds


@dataclass(frozen=True)
class Drifting:
    """The live continuation of the seeded drift: the gauge's running level at the start and
    how fast it climbs per running hour."""

    serial: str
    metric: str
    level: float
    per_hour: float


def seeded_drift() -> Drifting:
    """Where fleet.demo's seeded drift ends: the level of its last hour, climbing as it did."""
    serial, metric, start, per_hour, hours = DRIFTING
    return Drifting(serial=serial, metric=metric, level=start + per_hour * hours, per_hour=per_hour)


@dataclass(frozen=True)
class DemoSchedule:
    """The first cycle, then one round per `period`, for the machines it was made for."""

    first: tuple[Happening, ...]
    serials: tuple[str, ...]  # the machines later rounds pick from
    models: dict[str, str]  # serial -> model code (for fault codes)
    seed: int
    period: float = PERIOD
    drift: Drifting | None = None

    def due(self, since: float, until: float) -> list[Happening]:
        """What starts in (since, until], seconds after the start, in order."""
        if until <= since:
            return []
        found = [h for h in self.first if since < h.at <= until]
        first_round = max(1, int(since // self.period))
        for index in range(first_round, int(until // self.period) + 1):
            found.extend(h for h in self.round(index) if since < h.at <= until)
        return sorted(found, key=lambda h: h.at)

    def round(self, index: int) -> list[Happening]:
        """Round `index` (≥ 1): a fault and an outage on two machines, at seeded moments."""
        if not self.serials:
            return []
        rng = random.Random(f"demo-round:{self.seed}:{index}")  # noqa: S311 - a demo, not a secret
        start = index * self.period
        faulty = rng.choice(self.serials)
        profile = PROFILES.get(self.models.get(faulty, ""), DEFAULT_PROFILE)
        fault_at, fault_for = start + rng.uniform(30, 300), rng.uniform(180, 600)
        fault = Happening(fault_at, faulty, Happens.FAULT, fault_for, rng.choice(profile.fault_codes))
        others = [s for s in self.serials if s != faulty] or list(self.serials)
        outage_at, outage_for = start + rng.uniform(300, 600), rng.uniform(150, 420)
        outage = Happening(outage_at, rng.choice(others), Happens.OUTAGE, outage_for)
        return sorted([fault, outage], key=lambda h: h.at)


def demo_schedule(machines: Sequence[tuple[str, str]], *, seed: int = 0) -> DemoSchedule:
    """The schedule for `machines` ((asset serial, model code): the fleet being simulated). The
    first cycle keeps the happenings whose machine is there; later rounds pick from them all."""
    models = dict(machines)
    drift = seeded_drift()
    return DemoSchedule(
        first=tuple(h for h in FIRST if h.serial in models),
        serials=tuple(sorted(s for s in models if s != drift.serial)),
        models=models,
        seed=seed,
        drift=drift if drift.serial in models else None,
    )
