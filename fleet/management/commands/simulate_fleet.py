"""`manage.py simulate_fleet`: the demo fleet as a real HTTP client of the ingest API."""

from __future__ import annotations

import os
import random
from argparse import ArgumentParser, ArgumentTypeError
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from fleet.simulator.client import Sender
from fleet.simulator.runner import FleetRunner, fleet_load
from fleet.simulator.schedule import demo_schedule
from fleet.simulator.tokens import TokenStore


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ArgumentTypeError("must be greater than 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ArgumentTypeError("must be at least 1")
    return value


class Command(BaseCommand):
    help = (
        "Drive the active devices with believable heartbeats through POST /api/v1/ingest/heartbeats: "
        "duty cycles, counters, gauges, a slow drift, rare faults, outages with store-and-forward "
        "replay and counter resets; --demo stages faults, an outage and a drift in the first minutes. "
        "Reuses the tokens it issued before (kept in --token-file) while the portal accepts them; "
        "a device without a working one gets a new token (its earlier ones stop working). "
        "Refused where demo data is off."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        port = os.environ.get("PORT") or "8000"
        parser.add_argument(
            "--base-url",
            default=f"http://127.0.0.1:{port}",
            help="The portal (default http://127.0.0.1:$PORT).",
        )
        parser.add_argument(
            "--interval",
            type=_positive_float,
            default=None,
            help="Real seconds between a device's heartbeats (default: its model's interval / --speed).",
        )
        parser.add_argument(
            "--speed",
            type=_positive_float,
            default=1.0,
            help="Simulated seconds per real second between heartbeats; ts stays the real clock.",
        )
        parser.add_argument(
            "--ticks",
            type=_positive_int,
            default=None,
            help="Stop after N heartbeats per device (default: run forever).",
        )
        parser.add_argument("--seed", type=int, default=None, help="Seed for a reproducible fleet.")
        parser.add_argument("--devices", type=_positive_int, default=None, help="Simulate at most N devices.")
        parser.add_argument(
            "--demo",
            action="store_true",
            help="Stage the demo's schedule: faults, an outage and the seeded drift within minutes "
            "(fleet/simulator/schedule.py).",
        )
        parser.add_argument(
            "--token-file",
            default=None,
            help="Where the simulator keeps its devices' tokens between runs, mode 0600 "
            "(default: $FLEETPORT_VAR_DIR/simulator/tokens.json).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Minting tokens with no overlap cuts off a real device's current token: demo only.
        if not settings.DEMO_ALLOWED:
            raise CommandError("The simulator is disabled in these settings (DEMO_ALLOWED is off).")
        try:
            sender = Sender(options["base_url"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        rng = random.Random(options["seed"])  # noqa: S311 - simulation, not security
        store = TokenStore(Path(options["token_file"] or settings.VAR_DIR / "simulator" / "tokens.json"))
        links = fleet_load(
            rng=rng,
            speed=options["speed"],
            interval=options["interval"],
            limit=options["devices"],
            tokens=store,
            drift=None if options["demo"] else "random",
        )
        if not links:
            raise CommandError("No active devices of active customers: run `manage.py seed_demo` first.")
        schedule = None
        if options["demo"]:
            machines = [(link.sim.spec.asset_serial, link.sim.spec.model_code) for link in links]
            schedule = demo_schedule(machines, seed=options["seed"] or 0)
        # From here on it is an HTTP client only: don't hold a database connection for hours.
        connections.close_all()
        # Names only: tokens are secrets and are never printed.
        self.stdout.write(
            f"Simulating {len(links)} devices against {sender.url} at speed {options['speed']:g} "
            f"({', '.join(link.name for link in links)}); Ctrl-C to stop."
        )
        reused = sum(link.token_reused for link in links)
        self.stdout.write(f"Tokens: {reused} reused from {store.path}, {len(links) - reused} issued.")
        runner = FleetRunner(
            links, sender, out=self._line, rng=rng, ticks=options["ticks"], schedule=schedule
        )
        try:
            total = runner.run()
        except KeyboardInterrupt:
            # Heartbeats still buffered are lost, like a gateway switched off; the next run
            # continues after the last seq the server stored.
            runner.summary()
            total = runner.total
        self.stdout.write(self.style.SUCCESS(f"Done: {total.line()}."))

    def _line(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()
