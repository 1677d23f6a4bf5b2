"""What the simulated machines are like, and what a device knows about itself: plain data.

`PROFILES` and `Behaviour` set how a kind of machine runs and how often the rare events
(faults, outages, counter resets, the slow drift) happen; `device_spec` reads a `Device` into
the `DeviceSpec` that `fleet.simulator.machine.DeviceSim` runs without a database.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fleet.models import Device, MetricKind

MAX_BATCH = 1000  # the contract's limit per request (docs/ingest.md, "The device contract")

Heartbeat = dict[str, Any]


def utc_now() -> datetime:
    return datetime.now(UTC)


# --- what the machines are like -------------------------------------------------------------


@dataclass(frozen=True)
class ModelProfile:
    """How a kind of machine behaves; simulated minutes and kW."""

    rated_kw: float
    run_minutes: tuple[float, float]
    idle_minutes: tuple[float, float]
    load: tuple[float, float]  # fraction of rated power while running
    cycles_per_minute: tuple[float, float]
    fault_codes: tuple[str, ...]


PROFILES: dict[str, ModelProfile] = {
    # Screw compressors load and unload with air demand: long runs, shorter pauses.
    "aircomp-75": ModelProfile(
        75.0, (30, 150), (10, 60), (0.55, 0.95), (1, 3), ("E-OVERHEAT", "E-MOTOR-OVERLOAD")
    ),
    # Chillers on a cold store run almost all the time.
    "frostline-200": ModelProfile(
        65.0, (60, 300), (5, 30), (0.5, 0.9), (0.5, 1), ("E-HIGH-PRESSURE", "E-REFRIGERANT-LOW")
    ),
    # Pumps run on demand: short runs, long pauses, a few cycles a minute while running.
    "hydro-p40": ModelProfile(15.0, (10, 60), (10, 90), (0.6, 1.0), (2, 6), ("E-DRY-RUN", "E-OVERHEAT")),
}
DEFAULT_PROFILE = ModelProfile(20.0, (30, 120), (10, 60), (0.5, 0.9), (1, 4), ("E-OVERHEAT", "E-INTERNAL"))

# Where a gauge settles when the machine stops, as a fraction of its normal range: oil cools
# towards the low end, a chiller's supply warms towards the high end. Kept inside the range
# (a stopped pump would really read 0 m³/h) so that alarm rules fire on the drift and faults
# staged here, not on every idle period.
REST_FRACTION: dict[str, float] = {
    "temp_c": 0.15,
    "pressure_bar": 0.3,
    "supply_temp_c": 0.85,
    "cop": 0.5,
    "flow_m3h": 0.05,
    "vibration_mm_s": 0.05,
}
DEFAULT_REST_FRACTION = 0.25
RUNNING_TAU = 180.0  # s: gauges reach their running value within a few minutes
IDLE_TAU = 600.0  # s: and relax more slowly when the machine stops


@dataclass(frozen=True)
class Behaviour:
    """Rates of the rare events, per simulated hour and per device (Poisson)."""

    fault_per_hour: float = 0.05
    fault_minutes: tuple[float, float] = (5, 45)
    outage_per_hour: float = 0.03
    outage_minutes: tuple[float, float] = (3, 40)
    reset_per_hour: float = 0.004
    drift_hours: float = 6.0  # running hours for the drifting gauge to reach its threshold
    drift_hold_hours: float = 2.0  # then it stays past it this long before a "service" resets it


# --- what a device knows about itself -------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    code: str
    kind: str  # "gauge" | "counter"
    normal_min: float | None = None
    normal_max: float | None = None

    @property
    def is_counter(self) -> bool:
        return self.kind == MetricKind.COUNTER.value

    def working_range(self) -> tuple[float, float]:
        """The normal range, or a sensible stand-in where the catalogue leaves a bound empty."""
        low, high = self.normal_min, self.normal_max
        if low is None and high is None:
            return 0.0, 100.0
        if low is None:
            assert high is not None
            low = high - max(abs(high), 10.0)
        if high is None:
            high = low + max(abs(low), 10.0)
        if high <= low:
            high = low + 1.0
        return low, high

    def is_abnormal(self, value: float) -> bool:
        """Outside a bound the catalogue defines (a missing bound is no threshold)."""
        return (self.normal_min is not None and value < self.normal_min) or (
            self.normal_max is not None and value > self.normal_max
        )


@dataclass(frozen=True)
class DeviceSpec:
    """A device as the simulator sees it: plain data, so DeviceSim needs no database."""

    device_id: str
    serial_number: str
    model_code: str
    interval_seconds: int
    metrics: tuple[MetricSpec, ...]
    next_seq: int = 0
    counters: Mapping[str, float] = field(default_factory=dict)
    asset_serial: str = ""


def _as_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def device_spec(device: Device) -> DeviceSpec:
    """Read what the simulator needs from a device (with `asset__model` and its metrics loaded).

    The seq continues after the newest stored one and the counters from the stored readings
    (`counter_state` is `{code: [seq, value, …]}`), so a restart of the simulator looks to the
    server like a device that kept counting, not like a reset.
    """
    model = device.asset.model
    metrics = tuple(
        MetricSpec(
            code=m.code,
            kind=str(m.kind),
            normal_min=_as_float(m.normal_min),
            normal_max=_as_float(m.normal_max),
        )
        for m in sorted(model.metrics.all(), key=lambda m: m.code)
    )
    counters: dict[str, float] = {}
    for code, state in (device.counter_state or {}).items():
        value = _as_float(state[1]) if isinstance(state, list) and len(state) >= 2 else None
        if value is not None and value >= 0:
            counters[code] = value
    return DeviceSpec(
        device_id=str(device.pk),
        serial_number=device.serial_number,
        model_code=model.code,
        interval_seconds=model.heartbeat_interval_seconds or 60,
        metrics=metrics,
        next_seq=device.last_seq + 1 if device.last_seq is not None else 0,
        counters=counters,
        asset_serial=device.asset.serial_number,
    )
