"""The demo schedule's fault, end to end with real parts: the simulator posts to a real uvicorn,
a real Celery worker drains the heartbeats, raises the device_fault alarm and, through the
outbox and the alarm event, opens the ticket the support queue shows."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from fleet.models import Alarm, AlarmKind
from fleet.simulator.client import Sender
from fleet.simulator.runner import FleetRunner, fleet_load
from fleet.simulator.schedule import DemoSchedule, Happening, Happens
from fleet.simulator.spec import Behaviour
from fleet.simulator.tokens import TokenStore
from portal.models import Customer
from support.models import Ticket
from tests.fleet.test_simulator import demo_model, install
from tests.integration import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_staged_fault_opens_a_ticket(
    live_worker: Any, asgi_server: str, customer_a: Customer, tmp_path: Path
) -> None:
    # given a compressor of the demo's, simulated against the real server, and a schedule that
    # trips it a second after the start (the demo's first fault, brought forward)
    device, _token = install(customer_a, demo_model("aircomp-75"), "AC75-1001")
    links = fleet_load(
        rng=random.Random(4),
        interval=0.5,
        behaviour=Behaviour(fault_per_hour=0, outage_per_hour=0, reset_per_hour=0),
        tokens=TokenStore(tmp_path / "tokens.json"),
        drift=None,
    )
    schedule = DemoSchedule(
        first=(Happening(1.0, "AC75-1001", Happens.FAULT, 30, "E-OVERHEAT"),), serials=(), models={}, seed=0
    )
    lines: list[str] = []

    # when the simulator runs a few seconds
    total = FleetRunner(
        links, Sender(asgi_server), out=lines.append, rng=random.Random(4), ticks=8, schedule=schedule
    ).run()

    # then the server took every heartbeat, the fault raised its alarm, and the alarm a ticket
    assert total.accepted == total.sent == 8, lines
    asset = device.asset
    wait_until(
        lambda: Ticket.objects.filter(asset=asset, alarm_key="device_fault").exists(),
        what="the fault's ticket",
        timeout=60,
    )
    alarm = Alarm.objects.get(asset=asset, kind=AlarmKind.DEVICE_FAULT)
    assert "E-OVERHEAT" in alarm.message
    ticket = Ticket.objects.get(asset=asset, alarm_key="device_fault")
    assert (ticket.customer_id, ticket.priority) == (customer_a.pk, "P2")
    assert any("demo: AC75-1001 fault E-OVERHEAT" in line for line in lines)
