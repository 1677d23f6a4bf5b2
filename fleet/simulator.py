"""A believable demo fleet: devices that run and idle, drift, fault, drop off the network and replay.

`manage.py simulate_fleet` drives the active devices through the real ingest API (DESIGN.md,
"Device ingest contract") so that every part downstream — usage, alarms, live status, the
store-and-forward path, resets in usage billing — has something realistic to chew on.

Time: a heartbeat's `ts` is always the real clock (the server refuses anything more than 5
minutes ahead), never simulated time. `speed` only scales what happens *between* two
heartbeats: at speed 60 a tick half a real second after the previous one adds 30 simulated
seconds of run hours, energy and drift.

The pieces, so the behaviour is testable without HTTP:

    DeviceSim    one machine and its gateway: pure, no I/O; `tick(now)` makes the next heartbeat
                 and keeps it in the outbox until `delivered()` (store-and-forward)
    Sender       one POST with urllib; classifies the answer, never raises on network errors
    DeviceLink   a DeviceSim, its token and its retry state
    FleetRunner  the schedule: ticks each device on its interval, delivers, prints a line a minute
    fleet_load   the database side: active devices → DeviceSims with freshly issued tokens
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import math
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from django.db import transaction

from fleet.credentials import device_token_issue
from fleet.models import Device, MetricKind

INGEST_PATH = "/api/v1/ingest/heartbeats"
MAX_BATCH = 1000  # the contract's limit per request
# A gateway has finite flash: past this many buffered heartbeats the oldest are dropped, as
# real store-and-forward devices do, rather than growing without bound while the server is down.
MAX_OUTBOX = 50_000
DEFAULT_RETRY_AFTER = 5.0
MAX_BACKOFF = 60.0

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


def _as_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def device_spec(device: Device) -> DeviceSpec:
    """Read what the simulator needs from a device (with `asset__model` and its metrics loaded).

    The seq continues after the newest stored one and the counters from the stored readings
    (`counter_state` is `{code: [seq, value]}`), so a restart of the simulator looks to the
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
        value = _as_float(state[1]) if isinstance(state, list) and len(state) == 2 else None
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
    )


# --- one machine ----------------------------------------------------------------------------


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


# --- HTTP -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What came back for one POST; `status` None means no HTTP answer at all."""

    status: int | None
    accepted: int = 0
    retry_after: float | None = None
    bad_indices: tuple[int, ...] = ()
    detail: str = ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib would turn a redirected POST into a GET without the body; report the 3xx instead."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _retry_after(value: str | None) -> float | None:
    """Retry-After is either seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - utc_now()).total_seconds())


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Sender:
    """Posts heartbeats to the ingest endpoint with the standard library only.

    Never raises for what the network or the server does: every outcome is an `Answer`, so a
    server that is not up yet is just another answer to back off from.
    """

    def __init__(self, base_url: str, *, timeout: float = 15.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.url = base_url.rstrip("/") + INGEST_PATH
        self.timeout = timeout
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if _is_loopback(parts.hostname):
            handlers.append(urllib.request.ProxyHandler({}))  # a local server is never behind a proxy
        self._opener = urllib.request.build_opener(*handlers)

    def post(self, token: str, heartbeats: Sequence[Heartbeat]) -> Answer:
        # A lone heartbeat goes as an object, a replay as an array: both shapes are the contract.
        body: Any = heartbeats[0] if len(heartbeats) == 1 else list(heartbeats)
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked to be http(s) above
            self.url,
            data=json.dumps(body, allow_nan=False).encode(),
            method="POST",
            headers={"Authorization": f"Device {token}", "Content-Type": "application/json"},
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return self._answer(response.status, response.headers.get("Retry-After"), response.read())
        except urllib.error.HTTPError as exc:
            try:
                payload = exc.read()
            except (OSError, http.client.HTTPException):
                payload = b""
            return self._answer(exc.code, exc.headers.get("Retry-After") if exc.headers else None, payload)
        except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
            reason = getattr(exc, "reason", None) or exc
            return Answer(status=None, detail=f"{type(exc).__name__}: {reason}")

    @staticmethod
    def _answer(status: int, retry_after: str | None, payload: bytes) -> Answer:
        try:
            data = json.loads(payload) if payload else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        accepted = data.get("accepted") if status == 202 else 0
        bad: set[int] = set()
        for error in data.get("errors") or []:
            if isinstance(error, dict) and type(error.get("index")) is int:
                bad.add(error["index"])
        return Answer(
            status=status,
            accepted=accepted if type(accepted) is int else 0,
            retry_after=_retry_after(retry_after),
            bad_indices=tuple(sorted(bad)),
            detail=str(data.get("detail", ""))[:200],
        )


class PostClient(Protocol):
    """What a FleetRunner needs from a sender (`Sender`, or a fake in tests)."""

    def post(self, token: str, heartbeats: Sequence[Heartbeat]) -> Answer: ...


# --- running a fleet ------------------------------------------------------------------------


@dataclass
class DeviceLink:
    """A DeviceSim with its token and its delivery state. The token never appears in repr()."""

    sim: DeviceSim
    token: str = field(repr=False)
    interval: float  # real seconds between ticks
    ticks: int = 0
    next_tick: float = 0.0
    send_after: float = 0.0  # monotonic time before which this device must not send (429)
    batch_limit: int = MAX_BATCH
    disabled: str = ""  # why the server refuses this device for good (401)

    @property
    def name(self) -> str:
        return self.sim.spec.serial_number


@dataclass
class Stats:
    """Counts for the summary line: heartbeats sent and accepted, refused requests by code."""

    requests: int = 0
    sent: int = 0
    accepted: int = 0
    dropped: int = 0
    rejected: Counter[str] = field(default_factory=Counter)

    def add(self, other: Stats) -> None:
        self.requests += other.requests
        self.sent += other.sent
        self.accepted += other.accepted
        self.dropped += other.dropped
        self.rejected.update(other.rejected)

    def line(self) -> str:
        rejected = " ".join(f"{code}:{n}" for code, n in sorted(self.rejected.items())) or "none"
        return (
            f"sent {self.sent} in {self.requests} requests, accepted {self.accepted}, "
            f"rejected {rejected}, dropped {self.dropped}"
        )


class FleetRunner:
    """Ticks every device on its own interval and delivers its outbox, honouring the server.

    429 holds back the one device; 503 and network errors hold back everyone (the server as a
    whole is busy or away), with Retry-After or an exponential backoff. Heartbeats stay in the
    outboxes meanwhile and go out as arrays when sending resumes.
    """

    def __init__(
        self,
        links: Sequence[DeviceLink],
        sender: PostClient,
        *,
        out: Callable[[str], None],
        rng: random.Random,
        ticks: int | None = None,
        summary_every: float = 60.0,
        flush_timeout: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.links = list(links)
        self.sender = sender
        self.out = out
        self.rng = rng
        self.ticks = ticks
        self.summary_every = summary_every
        self.flush_timeout = flush_timeout
        self.monotonic = monotonic
        self.sleep = sleep
        self.clock = clock
        self.window = Stats()
        self.total = Stats()
        self._hold_until = 0.0  # fleet-wide: the server is away (network) or backlogged (503)
        self._hold_failures = 0
        self._warned: set[str] = set()

    def run(self) -> Stats:
        """Run until each device made `ticks` heartbeats (then flush), or forever."""
        start = self.monotonic()
        for link in self.links:
            # Stagger the first ticks so the fleet does not post in lockstep.
            link.next_tick = start + self.rng.uniform(0, link.interval)
        next_summary = start + self.summary_every
        while not self._ticks_done() and any(not link.disabled for link in self.links):
            now = self.monotonic()
            for link in self.links:
                if self._wants_tick(link) and link.next_tick <= now:
                    link.sim.tick(self.clock())
                    link.ticks += 1
                    link.next_tick += link.interval
                    if link.next_tick < now:  # fell behind (a slow server): skip, don't burst
                        link.next_tick = now + link.interval
            self.deliver_all()
            if self.monotonic() >= next_summary:
                self.summary()
                next_summary += self.summary_every
            self._sleep_until(min([next_summary, *self._wakeups()]))
        self.flush()
        return self.total

    def flush(self) -> None:
        """At the end of a bounded run the link comes back and everything buffered is sent."""
        for link in self.links:
            link.sim.end_outage()
        deadline = self.monotonic() + self.flush_timeout
        while self._pending() and self.monotonic() < deadline:
            self.deliver_all()
            if self._pending():
                self._sleep_until(min([deadline, *self._wakeups()]))
        self.summary()
        left = sum(len(link.sim.outbox) for link in self.links if not link.disabled)
        if left:
            self.out(f"{left} heartbeats could not be delivered before the end of the run")

    def summary(self) -> None:
        buffered = sum(len(link.sim.outbox) for link in self.links)
        self.out(f"{self.clock():%Y-%m-%dT%H:%M:%SZ} {self.window.line()}, buffered {buffered}")
        self.total.add(self.window)
        self.window = Stats()

    def deliver_all(self) -> None:
        for link in self.links:
            self.deliver(link)

    def deliver(self, link: DeviceLink, *, max_requests: int = 5) -> None:
        """Send what `link` has buffered, a few requests at most so one replay can't starve the rest."""
        for _ in range(max_requests):
            now = self.monotonic()
            if link.disabled or now < self._hold_until or now < link.send_after:
                return
            batch = link.sim.next_batch(link.batch_limit)
            if not batch:
                return
            answer = self.sender.post(link.token, batch)
            self.handle(link, batch, answer)

    def handle(self, link: DeviceLink, batch: Sequence[Heartbeat], answer: Answer) -> None:
        """Act on one answer: forget what is delivered or hopeless, keep what is worth retrying."""
        stats = self.window
        stats.requests += 1
        stats.sent += len(batch)
        status = answer.status
        now = self.monotonic()
        if status == 202:
            link.sim.delivered(len(batch))
            stats.accepted += answer.accepted
            self._hold_failures = 0
            if "net" in self._warned:
                self._warned.discard("net")  # so the next time it goes away is reported too
                self.out("server reachable again; sending what was buffered")
            return
        stats.rejected[str(status) if status is not None else "network"] += 1
        if status == 429:
            link.send_after = now + self._jittered(self._wait(answer))
        elif status == 503:
            self._hold_until = now + self._jittered(self._wait(answer))
        elif status is None or status >= 500:
            # Server not up yet, restarting, or a proxy in between: back off, keep everything.
            self._hold_failures += 1
            self._hold_until = now + self._jittered(min(MAX_BACKOFF, 2 ** (self._hold_failures - 1)))
            self._warn_once("net", f"server unreachable or failing ({answer.detail or status}); retrying")
        elif status == 401:
            link.disabled = "token refused (401): revoked, rotated elsewhere, or another server's database"
            self._warn_once(f"401:{link.name}", f"{link.name}: {link.disabled}; this device stops sending")
        elif status == 413 and len(batch) > 1:
            link.batch_limit = max(1, len(batch) // 2)
        elif status == 400 and answer.bad_indices and len(answer.bad_indices) < len(batch):
            # Drop only what the server called bad (e.g. older than the accepted window) and
            # retry the rest: a 400 accepts nothing from the body.
            bad = set(answer.bad_indices)
            keep = [hb for index, hb in enumerate(batch) if index not in bad]
            link.sim.delivered(len(batch))
            link.sim.outbox[:0] = keep
            stats.dropped += len(batch) - len(keep)
            self._warn_once(f"400:{link.name}", f"{link.name}: server refused heartbeats: {answer.detail}")
        else:
            # 400 for the whole body, 413 for one heartbeat, 415, 3xx…: resending cannot help.
            link.sim.delivered(len(batch))
            stats.dropped += len(batch)
            self._warn_once(f"{status}:{link.name}", f"{link.name}: {status} {answer.detail}; batch dropped")

    # - helpers -

    def _ticks_done(self) -> bool:
        return self.ticks is not None and all(
            link.ticks >= self.ticks or link.disabled for link in self.links
        )

    def _wants_tick(self, link: DeviceLink) -> bool:
        return not link.disabled and (self.ticks is None or link.ticks < self.ticks)

    def _pending(self) -> bool:
        return any(link.sim.outbox and not link.disabled for link in self.links)

    def _wakeups(self) -> list[float]:
        times = [link.next_tick for link in self.links if self._wants_tick(link)]
        # Only devices that could send: one in an outage waits for its next tick, not in a spin.
        waiting = [
            link.send_after
            for link in self.links
            if link.sim.outbox and link.sim.online and not link.disabled
        ]
        times.extend(max(t, self._hold_until) for t in waiting)
        return times

    def _sleep_until(self, moment: float) -> None:
        # At most a second at a time, so Ctrl-C and the summary stay responsive.
        self.sleep(min(1.0, max(0.0, moment - self.monotonic())))

    @staticmethod
    def _wait(answer: Answer) -> float:
        return answer.retry_after if answer.retry_after is not None else DEFAULT_RETRY_AFTER

    def _jittered(self, seconds: float) -> float:
        # A little extra so a fleet told "retry in 5 s" doesn't come back in the same millisecond.
        return seconds + self.rng.uniform(0, min(1.0, 0.1 * seconds + 0.1))

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.out(message)


# --- the database side ----------------------------------------------------------------------


def fleet_devices(*, limit: int | None = None) -> list[Device]:
    """The devices to simulate: active ones of active customers, in a stable order for --seed."""
    queryset = (
        Device.objects.filter(is_active=True, customer__is_active=True)
        .select_related("asset__model")
        .prefetch_related("asset__model__metrics")
        .order_by("asset__serial_number", "serial_number")
    )
    return list(queryset[:limit] if limit is not None else queryset)


def fleet_load(
    *,
    rng: random.Random,
    speed: float = 1.0,
    interval: float | None = None,
    limit: int | None = None,
    behaviour: Behaviour | None = None,
) -> list[DeviceLink]:
    """Build a link per device with a freshly issued token.

    Tokens are stored only as hashes, so the simulator mints its own each run; with no overlap
    the previous run's tokens stop working at once (one simulator per fleet). `interval` is
    real seconds between ticks; by default each model's heartbeat interval divided by `speed`.
    """
    devices = fleet_devices(limit=limit)
    specs = [device_spec(device) for device in devices]
    drift = drift_pick(specs, rng)
    links = []
    with transaction.atomic():  # every device gets its new token, or none does
        for device, spec in zip(devices, specs, strict=True):
            links.append(
                _link(device, spec, rng=rng, speed=speed, interval=interval, behaviour=behaviour, drift=drift)
            )
    return links


def _link(
    device: Device,
    spec: DeviceSpec,
    *,
    rng: random.Random,
    speed: float,
    interval: float | None,
    behaviour: Behaviour | None,
    drift: tuple[str, str] | None,
) -> DeviceLink:
    """A DeviceSim for `device` with its own random stream, and a fresh token."""
    seconds = interval if interval is not None else spec.interval_seconds / speed
    sim = DeviceSim(
        spec,
        # One stream per device, drawn in a fixed order: a seed reproduces each device's story.
        rng=random.Random(rng.getrandbits(64)),  # noqa: S311 - simulation, not security
        speed=speed,
        nominal_step=seconds * speed,
        behaviour=behaviour,
        drift_code=drift[1] if drift is not None and drift[0] == spec.device_id else None,
    )
    token = device_token_issue(device=device, actor=None, overlap=timedelta(0))
    return DeviceLink(sim=sim, token=token, interval=seconds)
