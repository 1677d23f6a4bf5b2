"""The demo shows itself: `simulate_fleet --demo` stages a fault, an outage and the seeded drift
within the first five minutes (on a simulated clock: nothing waits), and restarts of the
simulator reuse the tokens it issued instead of issuing new ones each time."""

from __future__ import annotations

import itertools
import random
import stat
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fleet.credentials import device_revoke
from fleet.demo import ASSETS
from fleet.ingest.auth import authenticate_device
from fleet.models import Device
from fleet.simulator.client import Answer
from fleet.simulator.machine import DeviceSim
from fleet.simulator.runner import DeviceLink, FleetRunner, fleet_load
from fleet.simulator.schedule import FIRST, Happens, demo_schedule, seeded_drift
from fleet.simulator.tokens import TokenStore
from portal.models import AuditEntry, Customer
from tests.fleet.test_simulator import QUIET, demo_model, install, spec_of

DEMO_MACHINES = [
    (serial, model) for sites in ASSETS.values() for assets in sites.values() for model, serial, _ in assets
]
FIVE_MINUTES = 300.0
OFFLINE_AFTER = 3 * 30 + 15  # three heartbeat intervals, then the offline sweep (every 15 s)


class Recorder:
    """A server that accepts everything and notes when (simulated seconds) what came from whom."""

    def __init__(self, clock: list[float], serial_of: dict[str, str]) -> None:
        self.clock = clock
        self.serial_of = serial_of
        self.posts: list[tuple[float, str, dict[str, Any]]] = []

    def post(self, token: str, heartbeats: Sequence[dict[str, Any]]) -> Answer:
        for heartbeat in heartbeats:
            self.posts.append((self.clock[0], self.serial_of[token], heartbeat))
        return Answer(status=202, accepted=len(heartbeats))

    def of(self, serial: str) -> list[tuple[float, dict[str, Any]]]:
        return [(at, hb) for at, who, hb in self.posts if who == serial]


def five_demo_minutes(seed: int = 0) -> tuple[Recorder, list[str]]:
    """The demo fleet for five minutes and a bit, on a simulated clock, with the demo schedule."""
    clock = [0.0]
    begin = datetime.now(UTC) - timedelta(hours=1)  # the device clock is never ahead of the real one

    def sleep(seconds: float) -> None:
        clock[0] += max(seconds, 0.01)

    links = [
        DeviceLink(
            sim=DeviceSim(
                spec_of(model, asset_serial=serial),
                rng=random.Random(f"{seed}:{serial}"),
                behaviour=QUIET,  # only what the schedule stages
                clock=lambda: begin + timedelta(seconds=clock[0]),
            ),
            token=f"token-{serial}",
            interval=30.0,
        )
        for serial, model in DEMO_MACHINES
    ]
    recorder = Recorder(clock, {link.token: link.sim.spec.asset_serial for link in links})
    lines: list[str] = []
    runner = FleetRunner(
        links,
        recorder,
        out=lines.append,
        rng=random.Random(seed),
        ticks=12,  # 12 × 30 s: past the five minutes, whatever the stagger
        monotonic=lambda: clock[0],
        sleep=sleep,
        clock=lambda: begin + timedelta(seconds=clock[0]),
        schedule=demo_schedule(DEMO_MACHINES, seed=seed),
    )
    runner.run()
    return recorder, lines


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_within_five_minutes_a_fault_an_outage_and_the_drift(seed: int) -> None:
    # when the demo fleet runs for five minutes with the demo schedule
    recorder, lines = five_demo_minutes(seed)

    # then a machine at each customer reports a fault (a device_fault alarm, which opens a ticket)
    for serial in ("AC75-1001", "FL200-2101"):
        faults = [at for at, hb in recorder.of(serial) if hb["status"] == "fault" and at <= FIVE_MINUTES]
        assert faults, f"{serial} reported no fault within five minutes"
        assert all(hb["fault_code"] for _at, hb in recorder.of(serial) if hb["status"] == "fault")
    # and the pump falls silent long enough for the offline sweep to mark it offline, having
    # reported before (an asset that never reported is not swept), then replays its buffer
    pump = recorder.of("HP40-3001")
    times = sorted({at for at, _hb in pump})
    gaps = [(a, b) for a, b in itertools.pairwise(times) if b - a >= OFFLINE_AFTER]
    assert gaps, times
    assert gaps[0][0] + OFFLINE_AFTER <= FIVE_MINUTES, times
    seqs = [hb["seq"] for _at, hb in pump]
    assert seqs == sorted(set(seqs)), "the outage lost or reordered heartbeats"
    # and the drifting compressor runs at the seeded drift's level, not at its usual ~67 °C
    drift = seeded_drift()
    running = [
        hb["metrics"]["temp_c"] for _at, hb in recorder.of(drift.serial)[3:] if hb["status"] != "fault"
    ]
    levels = [t for t in running if t > 75]
    assert len(levels) >= len(running) // 2, running
    assert abs(sum(levels) / len(levels) - drift.level) < 4, levels
    # and the simulator said what it staged (names only, no token)
    assert any("AC75-1001 fault E-OVERHEAT" in line for line in lines)
    assert not any("token-" in line for line in lines)


def test_the_schedule_is_the_same_for_a_seed_and_keeps_going_after_the_first_cycle() -> None:
    schedule = demo_schedule(DEMO_MACHINES, seed=3)
    again = demo_schedule(DEMO_MACHINES, seed=3)
    hour = schedule.due(0, 3600)

    assert hour == again.due(0, 3600)
    assert [h for h in hour if h.at <= FIVE_MINUTES] == list(FIRST)
    # every later round: a fault and an outage, never on the drifting machine (its stop would
    # start its trend over) and within its own period
    for index in (1, 2):
        happenings = schedule.round(index)
        assert {h.what for h in happenings} == {Happens.FAULT, Happens.OUTAGE}
        assert all(h.serial != seeded_drift().serial for h in happenings)
        assert all(index * schedule.period < h.at < (index + 1) * schedule.period for h in happenings)
    # asked in slices, the same happenings, each once
    slices = [h for start in range(0, 3600, 7) for h in schedule.due(start, min(start + 7, 3600))]
    assert slices == hour


def test_a_fleet_without_the_demo_machines_still_gets_later_rounds() -> None:
    schedule = demo_schedule([("X-1", "hydro-p40"), ("X-2", "aircomp-75")], seed=0)

    assert schedule.first == ()
    assert schedule.drift is None
    assert {h.serial for h in schedule.due(0, 2 * schedule.period)} <= {"X-1", "X-2"}


# --- tokens kept across restarts (database) ---------------------------------------------------


def issued(device: Device) -> int:
    return AuditEntry.objects.filter(action="device.token_issued", target_id=str(device.pk)).count()


def test_two_simulator_starts_issue_tokens_once(customer_a: Customer, tmp_path: Path) -> None:
    # given two devices and no token file yet
    model = demo_model("hydro-p40")
    first, _ = install(customer_a, model, "HP-1")
    second, _ = install(customer_a, model, "HP-2")
    before = {d.pk: issued(d) for d in (first, second)}
    store = TokenStore(tmp_path / "var" / "simulator" / "tokens.json")

    # when the simulator starts twice
    links = fleet_load(rng=random.Random(1), tokens=store)
    again = fleet_load(rng=random.Random(2), tokens=store)

    # then each device got one new token, the second start reused it, and it works
    assert {d.pk: issued(d) - before[d.pk] for d in (first, second)} == {first.pk: 1, second.pk: 1}
    assert [link.token for link in again] == [link.token for link in links]
    assert all(link.token_reused for link in again)
    assert not any(link.token_reused for link in links)
    assert all(authenticate_device(link.token) is not None for link in again)
    # and the file is the owner's alone
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert set(store.load()) == {str(first.pk), str(second.pk)}


def test_only_a_token_the_server_refuses_is_issued_again(customer_a: Customer, tmp_path: Path) -> None:
    # given a simulator that ran once, then one device revoked and the file tampered with
    model = demo_model("hydro-p40")
    first, _ = install(customer_a, model, "HP-1")
    second, _ = install(customer_a, model, "HP-2")
    store = TokenStore(tmp_path / "tokens.json")
    links = {link.sim.spec.device_id: link.token for link in fleet_load(rng=random.Random(1), tokens=store)}
    device_revoke(device=first, actor=None)
    before = {d.pk: issued(d) for d in (first, second)}

    # when it starts again
    again = {link.sim.spec.device_id: link.token for link in fleet_load(rng=random.Random(1), tokens=store)}

    # then only the revoked device got a new token
    assert again[str(second.pk)] == links[str(second.pk)]
    assert again[str(first.pk)] != links[str(first.pk)]
    assert {d.pk: issued(d) - before[d.pk] for d in (first, second)} == {first.pk: 1, second.pk: 0}
    assert store.load() == again

    # and a file that is not ours any more (garbage) means fresh tokens, not a crash
    store.path.write_text("{not json")
    assert {link.sim.spec.device_id for link in fleet_load(rng=random.Random(1), tokens=store)} == set(again)


# --- the seeded drift survives live data (database) ---------------------------------------------


def test_the_seeded_drift_is_still_predicted_once_live_run_hours_arrive(db: None) -> None:
    from fleet.demo import seed
    from fleet.health import evaluate
    from fleet.models import Alarm, AlarmKind, Asset, Resolution, TelemetryRollup
    from tests.factories import CustomerFactory

    # given the demo fleet as seed_demo loads it, and the simulator's first live hour of the
    # drifting compressor: still running, at the seeded level, its run hours advancing
    customers: dict[str, Customer] = {
        slug: CustomerFactory.create(slug=slug) for slug in ("acme", "borealis")
    }
    seed(customers)
    drift = seeded_drift()
    asset = Asset.objects.get(serial_number=drift.serial)
    now = datetime.now(UTC).replace(minute=50)
    live = [
        (drift.metric, drift.level - 1, drift.level + 2.5, drift.level * 90),
        ("run_hours", 2460.0, 2460.8, 2460.4 * 90),
    ]
    TelemetryRollup.objects.bulk_create(
        TelemetryRollup(
            customer_id=asset.customer_id, asset=asset, metric=metric, resolution=Resolution.HOUR,
            bucket=now.replace(minute=0, second=0, microsecond=0), count=90, total=total,
            minimum=low, maximum=high,
        )
        for metric, low, high, total in live
    )  # fmt: skip

    # when the health rules are evaluated with the live hour in
    evaluate([asset.pk], now)

    # then the trend is still predicted: the seeded hours count as running hours too
    prediction = Alarm.objects.get(asset=asset, kind=AlarmKind.PREDICTION, cleared_at__isnull=True)
    assert prediction.expected_at is not None
    assert now < prediction.expected_at < now + timedelta(hours=48)
