"""The fleet simulator: believable heartbeats that always satisfy the ingest contract.

DeviceSim is pure, so most of these run without a database; the last ones build a device with
the fleet services and check what the simulator derives from it and that the endpoint accepts it.
"""

from __future__ import annotations

import json
import math
import random
import socket
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from itertools import pairwise
from typing import Any

import pytest
from django.test import Client

from fleet import services
from fleet.demo import MODELS
from fleet.ingest.auth import authenticate_device
from fleet.models import AssetModel, Device
from fleet.simulator.client import Answer, Sender
from fleet.simulator.machine import DeviceSim
from fleet.simulator.runner import DeviceLink, FleetRunner, fleet_load
from fleet.simulator.spec import MAX_BATCH, Behaviour, DeviceSpec, MetricSpec, ModelProfile, device_spec
from portal.models import Customer
from tests.factories import CustomerFactory, SiteFactory

URL = "/api/v1/ingest/heartbeats"
STATUSES = {"ok", "warning", "fault"}
# Rare events made frequent, so a few hundred ticks show every one of them.
QUIET = Behaviour(fault_per_hour=0, outage_per_hour=0, reset_per_hour=0)
BUSY = Behaviour(
    fault_per_hour=1.0, outage_per_hour=1.0, reset_per_hour=0.5, drift_hours=1.0, drift_hold_hours=0.5
)


def spec_of(
    model_code: str,
    *,
    asset_serial: str = "",
    next_seq: int = 0,
    counters: dict[str, float] | None = None,
) -> DeviceSpec:
    """A device of one of the demo models, without the database; named after its asset's serial
    number when given, else after its model."""
    _name, _maker, interval, metrics = MODELS[model_code]
    name = asset_serial or model_code
    return DeviceSpec(
        device_id=f"dev-{name}",
        serial_number=f"GW-{name}",
        model_code=model_code,
        interval_seconds=interval,
        metrics=tuple(
            MetricSpec(
                code=m["code"],
                kind=m["kind"],
                normal_min=float(m["normal_min"]) if m["normal_min"] is not None else None,
                normal_max=float(m["normal_max"]) if m["normal_max"] is not None else None,
            )
            for m in metrics
        ),
        next_seq=next_seq,
        counters=counters or {},
        asset_serial=asset_serial,
    )


def run(
    sim: DeviceSim, ticks: int, *, step: float = 30.0, start: datetime | None = None
) -> list[dict[str, Any]]:
    """`ticks` heartbeats `step` real seconds apart, starting in the past so ts is not clamped."""
    begin = start or datetime.now(UTC) - timedelta(seconds=step * ticks + 60)
    return [sim.tick(begin + timedelta(seconds=step * i)) for i in range(ticks)]


def every_model_sim(seed: int, **kwargs: Any) -> Iterator[DeviceSim]:
    for code in MODELS:
        yield DeviceSim(spec_of(code), rng=random.Random(seed), **kwargs)


# --- DeviceSim -------------------------------------------------------------------------------


def test_seq_is_strictly_increasing_and_continues_after_the_stored_one() -> None:
    # given a device whose newest stored heartbeat is seq 41
    sim = DeviceSim(spec_of("aircomp-75", next_seq=42), rng=random.Random(1), behaviour=BUSY)

    # when it runs through outages, faults and resets
    beats = run(sim, 400)

    # then every seq is one more than the previous, from 42
    assert [hb["seq"] for hb in beats] == list(range(42, 442))


def test_counters_never_decrease_except_on_a_deliberate_reset() -> None:
    for sim in every_model_sim(7, behaviour=BUSY, speed=20):
        # given a device that swaps boards now and then
        # when it runs for a long while
        beats = run(sim, 600)

        # then a counter goes down only at a seq where the sim reset it, and there were some
        assert sim.reset_seqs, sim.spec.model_code
        counters = [m.code for m in sim.counter_specs]
        for previous, current in pairwise(beats):
            for code in counters:
                if current["metrics"][code] < previous["metrics"][code]:
                    assert current["seq"] in sim.reset_seqs
                    assert current["metrics"][code] < 1  # restarted from zero, not from elsewhere


def test_running_adds_simulated_hours_and_energy_scaled_by_speed() -> None:
    # given a 60 kW machine that runs without pause, at speed 60 (a real second is a simulated minute)
    always_on = ModelProfile(60.0, (10_000, 10_000), (0.001, 0.001), (0.5, 0.5), (1, 1), ("E-X",))
    spec = spec_of("frostline-200")
    sim = DeviceSim(
        spec, rng=random.Random(3), speed=60, nominal_step=1800, behaviour=QUIET, profile=always_on
    )

    # when 120 real seconds pass in 30-second ticks (2 simulated hours)
    beats = run(sim, 5, step=30)

    # then run hours grew by 2 hours, and energy by 2 h at 30 kW
    first, last = beats[0]["metrics"], beats[-1]["metrics"]
    assert last["run_hours"] - first["run_hours"] == pytest.approx(2.0, abs=1e-3)
    assert last["energy_kwh"] - first["energy_kwh"] == pytest.approx(60.0, abs=0.05)


def test_idle_time_adds_nothing_to_counters() -> None:
    # given a machine that never starts
    never_on = ModelProfile(60.0, (0.001, 0.001), (10_000, 10_000), (0.5, 0.5), (1, 1), ("E-X",))
    sim = DeviceSim(spec_of("hydro-p40"), rng=random.Random(4), behaviour=QUIET, profile=never_on)

    # when it reports for an hour, then its counters stand still
    beats = run(sim, 120)
    counters = [(hb["metrics"]["run_hours"], hb["metrics"]["cycles"]) for hb in beats[1:]]
    assert len(set(counters)) == 1


def test_restart_resumes_counters_instead_of_looking_like_a_reset() -> None:
    # given stored counter readings
    sim = DeviceSim(
        spec_of("hydro-p40", counters={"run_hours": 1532.25, "cycles": 90210}),
        rng=random.Random(5),
        behaviour=QUIET,
    )

    # when the simulator starts again
    first = sim.tick(datetime.now(UTC))

    # then its first readings continue from them
    assert first["metrics"]["run_hours"] >= 1532.25
    assert first["metrics"]["cycles"] >= 90210


def test_gauges_are_finite_numbers_and_keys_are_the_models_metric_codes() -> None:
    for sim in every_model_sim(11, behaviour=BUSY, speed=10, drift_code="temp_c"):
        codes = {m.code for m in sim.spec.metrics}
        for hb in run(sim, 300):
            # then every metric of the model is reported, and nothing else
            assert set(hb["metrics"]) == codes
            for value in hb["metrics"].values():
                assert type(value) in (int, float)
                assert math.isfinite(value)
            # and the heartbeat has exactly the contract's fields
            assert set(hb) == {"seq", "ts", "status", "metrics", "fault_code"}
            json.dumps(hb, allow_nan=False)


def test_ts_is_never_more_than_five_minutes_ahead_of_real_time() -> None:
    # given a fast simulation driven with clock values far in the future
    sim = DeviceSim(spec_of("aircomp-75"), rng=random.Random(2), speed=1000, behaviour=BUSY)
    start = datetime.now(UTC) + timedelta(hours=3)

    # when it ticks
    beats = run(sim, 50, step=60, start=start)

    # then every ts is RFC 3339 with an offset, not ahead of the real clock, and never goes back
    stamps = [datetime.fromisoformat(hb["ts"]) for hb in beats]
    limit = datetime.now(UTC) + timedelta(minutes=5)
    assert all(ts.tzinfo is not None and ts <= limit for ts in stamps)
    assert stamps == sorted(stamps)


def test_an_outage_buffers_and_replays_one_batch_in_seq_order() -> None:
    # given a device that is delivering normally
    sim = DeviceSim(spec_of("hydro-p40"), rng=random.Random(4), behaviour=QUIET)
    start = datetime.now(UTC) - timedelta(hours=1)
    sim.tick(start)
    assert len(sim.next_batch()) == 1
    sim.delivered(1)

    # when the network goes away for ten minutes of 30-second heartbeats
    sim.begin_outage(600)
    offline = []
    for i in range(1, 20):
        sim.tick(start + timedelta(seconds=30 * i))
        offline.append(sim.next_batch())
    beats_after = [sim.tick(start + timedelta(seconds=30 * i)) for i in range(20, 23)]

    # then nothing was sent meanwhile, and the replay is one array, oldest first, without gaps
    assert all(batch == [] for batch in offline)
    replay = sim.next_batch()
    seqs = [hb["seq"] for hb in replay]
    assert len(replay) == 22
    assert seqs == list(range(seqs[0], seqs[0] + 22))
    assert replay[-1] == beats_after[-1]
    assert [hb["ts"] for hb in replay] == sorted(hb["ts"] for hb in replay)


def test_a_long_outage_is_replayed_in_chunks_of_at_most_1000() -> None:
    # given a device that was offline for 2,500 heartbeats
    sim = DeviceSim(spec_of("aircomp-75"), rng=random.Random(8), behaviour=QUIET)
    sim.begin_outage(10**9)
    run(sim, 2500, step=1)
    sim.end_outage()

    # when it sends its buffer the way the runner does
    chunks = []
    while batch := sim.next_batch():
        chunks.append([hb["seq"] for hb in batch])
        sim.delivered(len(batch))

    # then chunks are full up to the last, and in seq order across chunks
    assert [len(c) for c in chunks] == [MAX_BATCH, MAX_BATCH, 500]
    assert [s for chunk in chunks for s in chunk] == list(range(2500))


def test_statuses_are_ok_warning_or_fault_and_fault_codes_go_with_faults() -> None:
    seen: set[str] = set()
    for sim in every_model_sim(13, behaviour=BUSY, speed=20, drift_code="temp_c"):
        for hb in run(sim, 400):
            assert hb["status"] in STATUSES
            assert (hb["fault_code"] is not None) == (hb["status"] == "fault")
            seen.add(hb["status"])
    assert seen == STATUSES


def test_a_drifting_gauge_crosses_its_threshold_and_warns() -> None:
    # given the compressor whose oil temperature creeps up (normal 40 to 95 °C)
    quiet = Behaviour(
        fault_per_hour=0, outage_per_hour=0, reset_per_hour=0, drift_hours=2, drift_hold_hours=1
    )
    sim = DeviceSim(
        spec_of("aircomp-75"), rng=random.Random(6), speed=60, behaviour=quiet, drift_code="temp_c"
    )

    # when it runs for a few simulated hours
    beats = run(sim, 200, step=30)

    # then the only warnings are readings above 95 °C, and there are some
    warnings = [hb for hb in beats if hb["status"] == "warning"]
    assert warnings
    assert all(hb["metrics"]["temp_c"] > 95 for hb in warnings)
    assert all(hb["metrics"]["temp_c"] <= 95 for hb in beats if hb["status"] == "ok")


def test_a_fault_is_reported_for_a_while_then_recovers() -> None:
    # given a running pump
    sim = DeviceSim(spec_of("hydro-p40"), rng=random.Random(9), behaviour=QUIET)
    start = datetime.now(UTC) - timedelta(hours=1)
    sim.tick(start)

    # when it trips for five minutes
    sim.begin_fault("E-DRY-RUN", 300)
    beats = [sim.tick(start + timedelta(seconds=30 * i)) for i in range(1, 16)]

    # then it reports the fault, with its code, and afterwards no longer
    assert [hb["status"] for hb in beats[:9]] == ["fault"] * 9
    assert beats[0]["fault_code"] == "E-DRY-RUN"
    assert all(hb["status"] != "fault" and hb["fault_code"] is None for hb in beats[10:])


def test_the_same_seed_gives_the_same_heartbeats() -> None:
    start = datetime.now(UTC) - timedelta(hours=2)
    one = run(DeviceSim(spec_of("frostline-200"), rng=random.Random(42), behaviour=BUSY), 100, start=start)
    two = run(DeviceSim(spec_of("frostline-200"), rng=random.Random(42), behaviour=BUSY), 100, start=start)
    assert one == two


def test_a_metric_without_a_normal_range_still_gets_sensible_values() -> None:
    # given a model whose gauge has no bounds in the catalogue
    spec = DeviceSpec(
        device_id="x",
        serial_number="GW-X",
        model_code="unknown",
        interval_seconds=60,
        metrics=(MetricSpec("run_hours", "counter"), MetricSpec("level_pct", "gauge")),
    )
    sim = DeviceSim(spec, rng=random.Random(1), behaviour=BUSY)

    # when it runs, then the gauge stays finite and never warns (there is no threshold)
    for hb in run(sim, 200):
        assert math.isfinite(hb["metrics"]["level_pct"])
        assert hb["status"] in {"ok", "fault"}


# --- FleetRunner and Sender, without the portal --------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.01)


class ScriptedSender:
    """Answers from a script, then 202; records what was posted."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = answers
        self.posted: list[list[int]] = []

    def post(self, token: str, heartbeats: Sequence[dict[str, Any]]) -> Answer:
        self.posted.append([hb["seq"] for hb in heartbeats])
        if self.answers:
            return self.answers.pop(0)
        return Answer(status=202, accepted=len(heartbeats))


def runner_with(
    sender: ScriptedSender, *, ticks: int, clock: FakeClock | None = None
) -> tuple[FleetRunner, DeviceLink, list[str]]:
    sim = DeviceSim(spec_of("aircomp-75"), rng=random.Random(1), behaviour=QUIET)
    link = DeviceLink(sim=sim, token="fpd_secret_token", interval=30.0)
    clock = clock or FakeClock()
    lines: list[str] = []
    runner = FleetRunner(
        [link],
        sender,
        out=lines.append,
        rng=random.Random(1),
        ticks=ticks,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
    )
    return runner, link, lines


def test_429_holds_the_heartbeats_and_sends_them_together_after_retry_after() -> None:
    # given a server that says "too fast, retry in 60 s" to the first two posts
    sender = ScriptedSender([Answer(status=429, retry_after=60), Answer(status=429, retry_after=60)])
    runner, link, lines = runner_with(sender, ticks=6)

    # when the device makes six heartbeats 30 s apart
    total = runner.run()

    # then nothing is lost: all six seqs were accepted, the held ones in one array, in order
    assert link.sim.outbox == []
    assert total.accepted == 6
    assert total.rejected["429"] == 2
    accepted_seqs = [seq for batch in sender.posted[2:] for seq in batch]
    assert accepted_seqs == list(range(6))
    assert any(len(batch) > 1 for batch in sender.posted[2:])
    # and the summary never shows the token
    assert lines
    assert not any("fpd_secret_token" in line for line in lines)
    assert "fpd_secret_token" not in repr(link)


def test_network_errors_never_crash_and_heartbeats_wait_for_the_server() -> None:
    # given a server that is not up for the first three attempts
    sender = ScriptedSender([Answer(status=None, detail="ConnectionRefusedError")] * 3)
    runner, link, _lines = runner_with(sender, ticks=4)

    # when the device runs
    total = runner.run()

    # then it backed off, and every heartbeat arrived once the server answered
    assert total.rejected["network"] == 3
    assert total.accepted == 4
    assert link.sim.outbox == []


def test_an_outage_waits_for_the_next_tick_instead_of_spinning() -> None:
    # given a device whose network is down for the whole run
    sender = ScriptedSender([])
    clock = FakeClock()
    runner, link, _lines = runner_with(sender, ticks=4, clock=clock)
    link.sim.begin_outage(10**6)

    # when it runs its four ticks (two real minutes), then flushes at the end
    total = runner.run()

    # then the loop slept in long stretches, and the buffer went out as one array at the end
    assert len(clock.sleeps) < 200
    assert sender.posted == [[0, 1, 2, 3]]
    assert total.accepted == 4


def test_a_400_drops_only_the_heartbeats_the_server_called_bad() -> None:
    # given a replay of five where the server refuses the second
    sender = ScriptedSender([Answer(status=400, bad_indices=(1,), detail="Nothing was accepted")])
    runner, link, _lines = runner_with(sender, ticks=1)
    link.sim.begin_outage(10**6)
    for i in range(5):
        link.sim.tick(datetime.now(UTC) - timedelta(minutes=10 - i))
    link.sim.end_outage()

    # when it delivers
    runner.deliver(link)

    # then the other four are sent again, in order
    assert sender.posted == [[0, 1, 2, 3, 4], [0, 2, 3, 4]]
    assert link.sim.outbox == []


def test_a_401_stops_that_device_only() -> None:
    sender = ScriptedSender([Answer(status=401, detail="Unknown or revoked device token.")])
    runner, link, lines = runner_with(sender, ticks=3)

    runner.run()

    assert link.disabled
    assert len(sender.posted) == 1
    assert any("401" in line for line in lines)


class RecordingServer(HTTPServer):
    bodies: list[tuple[str, str, Any]]


class _TooFast(BaseHTTPRequestHandler):
    server: RecordingServer

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.bodies.append(
            (self.headers["Authorization"], self.headers["Content-Type"], json.loads(self.rfile.read(length)))
        )
        body = b'{"detail": "This device sends faster than its rate.", "retry_after": 17}'
        self.send_response(429)
        self.send_header("Retry-After", "17")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output clean


def test_sender_posts_the_contract_shape_and_reads_retry_after() -> None:
    # given a stand-in server that always answers 429
    server = RecordingServer(("127.0.0.1", 0), _TooFast)
    server.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        sender = Sender(f"http://127.0.0.1:{server.server_port}")
        one = {"seq": 1, "ts": "2026-11-25T10:00:00+00:00", "status": "ok", "metrics": {}, "fault_code": None}

        # when it posts one heartbeat, then two
        single = sender.post("fpd_ab_cd", [one])
        double = sender.post("fpd_ab_cd", [one, {**one, "seq": 2}])
    finally:
        server.shutdown()
        server.server_close()

    # then one goes as an object, two as an array, with the device header; Retry-After is read
    assert single == double
    assert single.status == 429
    assert single.retry_after == 17
    (auth, content_type, first), (_, _, second) = server.bodies
    assert auth == "Device fpd_ab_cd"
    assert content_type == "application/json"
    assert first == one
    assert [hb["seq"] for hb in second] == [1, 2]


def test_sender_reports_a_server_that_is_not_up_as_no_answer() -> None:
    # given a port nothing listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    # when posting, then there is an answer without a status, not an exception
    answer = Sender(f"http://127.0.0.1:{port}", timeout=2).post("fpd_ab_cd", [{"seq": 0}])
    assert answer.status is None
    assert answer.detail


def test_sender_refuses_a_url_that_is_not_http() -> None:
    with pytest.raises(ValueError, match="http"):
        Sender("file:///etc/passwd")


# --- against the database and the real endpoint ---------------------------------------------


def demo_model(code: str) -> AssetModel:
    name, maker, interval, metrics = MODELS[code]
    return services.asset_model_create(
        actor=None,
        code=code,
        name=name,
        manufacturer=maker,
        heartbeat_interval_seconds=interval,
        metrics=metrics,
    )


def install(customer: Customer, model: AssetModel, serial: str) -> tuple[Device, str]:
    site = SiteFactory(customer=customer)
    asset = services.asset_create(actor=None, site=site, model=model, serial_number=serial, name=serial)
    return services.device_install(actor=None, asset=asset, serial_number=f"GW-{serial}")


def test_device_spec_continues_from_what_the_server_stored(customer_a: Customer) -> None:
    # given a device the worker has seen up to seq 41
    device, _token = install(customer_a, demo_model("aircomp-75"), "AC-1")
    device.last_seq = 41
    device.counter_state = {"run_hours": [41, 1532.25], "energy_kwh": [41, 80000.5]}
    device.save(update_fields=["last_seq", "counter_state"])
    device = Device.objects.select_related("asset__model").get(pk=device.pk)

    # when the simulator reads it
    spec = device_spec(device)

    # then it carries on from there, with the model's metrics and ranges
    assert spec.next_seq == 42
    assert spec.counters == {"run_hours": 1532.25, "energy_kwh": 80000.5}
    assert {m.code for m in spec.metrics} == {"run_hours", "energy_kwh", "pressure_bar", "temp_c"}
    temp = next(m for m in spec.metrics if m.code == "temp_c")
    assert (temp.normal_min, temp.normal_max) == (40.0, 95.0)


def test_fleet_load_mints_fresh_tokens_for_active_devices_of_active_customers(
    customer_a: Customer, customer_b: Customer
) -> None:
    # given devices at an active and at an inactive customer
    model = demo_model("hydro-p40")
    device_a, old_token = install(customer_a, model, "HP-A")
    install(customer_a, model, "HP-A2")
    gone = CustomerFactory(slug="gone", is_active=False)
    install(gone, model, "HP-GONE")

    # when the simulator starts
    links = fleet_load(rng=random.Random(1), speed=10)

    # then it drives only the active customer's devices, at the model interval / speed,
    # each with a working new token, and the token issued before no longer works
    assert sorted(link.sim.spec.serial_number for link in links) == ["GW-HP-A", "GW-HP-A2"]
    assert all(link.interval == 3.0 for link in links)
    for link in links:
        identity = authenticate_device(link.token)
        assert identity is not None
        assert identity.device_id == link.sim.spec.device_id
    assert authenticate_device(old_token) is None
    assert [link.sim.spec.device_id for link in fleet_load(rng=random.Random(1), limit=1)] == [
        str(device_a.pk)
    ]


def test_simulated_heartbeats_are_accepted_by_the_ingest_endpoint(customer_a: Customer) -> None:
    # given a simulated compressor on a real device with its token
    device, token = install(customer_a, demo_model("aircomp-75"), "AC-9")
    device = Device.objects.select_related("asset__model").get(pk=device.pk)
    sim = DeviceSim(device_spec(device), rng=random.Random(5), behaviour=BUSY, drift_code="temp_c")
    client = Client()

    def post(body: Any) -> Any:
        return client.post(
            URL, data=json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Device {token}"
        )

    # when it sends one heartbeat, then a replay after an outage
    start = datetime.now(UTC) - timedelta(hours=2)
    single = post(sim.tick(start))
    sim.delivered(1)
    sim.begin_outage(10**6)
    for i in range(1, 120):
        sim.tick(start + timedelta(minutes=i))
    sim.end_outage()
    replay = post(sim.next_batch())

    # then both are accepted whole
    assert single.status_code == 202, single.content
    assert single.json() == {"accepted": 1}
    assert replay.status_code == 202, replay.content
    assert replay.json() == {"accepted": 119}
