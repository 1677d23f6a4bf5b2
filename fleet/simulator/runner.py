"""Running a fleet: each device ticked on its own interval, its outbox delivered, the server's
answers honoured (`FleetRunner`), and the database side that builds the fleet (`fleet_load`)."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from django.db import transaction

from fleet.credentials import device_token_issue
from fleet.ingest.auth import authenticate_device
from fleet.models import Device
from fleet.simulator.client import Answer, PostClient
from fleet.simulator.machine import DeviceSim, drift_pick
from fleet.simulator.schedule import DemoSchedule, Happens
from fleet.simulator.spec import MAX_BATCH, Behaviour, DeviceSpec, Heartbeat, device_spec, utc_now
from fleet.simulator.tokens import TokenStore

DEFAULT_RETRY_AFTER = 5.0
MAX_BACKOFF = 60.0


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
    token_reused: bool = False  # the token kept from an earlier run, still accepted

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
        schedule: DemoSchedule | None = None,
    ) -> None:
        self.links = list(links)
        self.schedule = schedule
        if schedule is not None and schedule.drift is not None:
            drifting = schedule.drift
            for link in self.links:
                if link.sim.spec.asset_serial == drifting.serial:
                    link.sim.drift_from(drifting.metric, level=drifting.level, per_hour=drifting.per_hour)
        self._staged_until = 0.0  # seconds after the start up to which the schedule was applied
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
            self.stage(now - start)
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

    def stage(self, elapsed: float) -> None:
        """Start what the schedule has due up to `elapsed` seconds after the start."""
        if self.schedule is None:
            return
        by_serial = {link.sim.spec.asset_serial: link for link in self.links}
        for happening in self.schedule.due(self._staged_until, elapsed):
            link = by_serial.get(happening.serial)
            if link is None or link.disabled:
                continue
            simulated = happening.seconds * link.sim.speed
            if happening.what == Happens.FAULT:
                link.sim.begin_fault(happening.code, simulated)
            else:
                link.sim.begin_outage(simulated)
            what = f"{happening.what} {happening.code}".rstrip()
            self.out(f"demo: {happening.serial} {what} for {happening.seconds:.0f} s")
        self._staged_until = max(self._staged_until, elapsed)

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
    tokens: TokenStore | None = None,
    drift: tuple[str, str] | Literal["random"] | None = "random",
) -> list[DeviceLink]:
    """Build a link per device, with the token `tokens` kept for it or a fresh one.

    Tokens are stored only as hashes, so the simulator keeps the plaintext of those it issued
    in `tokens` (a file under var/, fleet.simulator.tokens) and reuses each one the server
    still accepts for that device; a device without one, or whose token was revoked, expired
    or belongs to another database, gets a new token, issued with no overlap (one simulator per
    fleet: the previous token stops working at once). Without `tokens` every device gets a new
    one. `interval` is real seconds between ticks; by default each model's heartbeat interval
    divided by `speed`. `drift` is (device id, gauge) for the one slow drift, None for none,
    or "random": a temperature picked with `rng`.
    """
    devices = fleet_devices(limit=limit)
    specs = [device_spec(device) for device in devices]
    if drift == "random":
        drift = drift_pick(specs, rng)
    kept = tokens.load() if tokens is not None else {}
    links = []
    with transaction.atomic():  # every device gets its new token, or none does
        for device, spec in zip(devices, specs, strict=True):
            link = _link(
                device, spec, rng=rng, speed=speed, interval=interval, behaviour=behaviour, drift=drift
            )
            link.token = _token_for(device, kept.get(spec.device_id))
            link.token_reused = link.token == kept.get(spec.device_id)
            links.append(link)
    if tokens is not None:
        fresh = {link.sim.spec.device_id: link.token for link in links}
        if any(kept.get(key) != token for key, token in fresh.items()):
            # Devices not simulated this time (--devices) keep theirs for the next run.
            tokens.save({**kept, **fresh})
    return links


def _token_for(device: Device, kept: str | None) -> str:
    """`kept` while the server accepts it for `device`; else a new token (audited, once)."""
    if kept is not None:
        identity = authenticate_device(kept)
        if identity is not None and identity.device_id == str(device.pk):
            return kept
    return device_token_issue(device=device, actor=None, overlap=timedelta(0))


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
    """A DeviceSim for `device` with its own random stream; its token is set by the caller."""
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
    return DeviceLink(sim=sim, token="", interval=seconds)
