"""The fleet cast: one asset model, an asset with a device (and its token) per customer."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fleet import services
from fleet.ingest import worker
from fleet.ingest.auth import clear_auth_cache
from fleet.models import Asset, AssetModel, Device, IngestInbox
from portal.models import Customer
from tests.factories import SiteFactory


@dataclass
class Installed:
    asset: Asset
    device: Device
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Device {self.token}"}


@pytest.fixture(autouse=True)
def _fresh_auth_cache() -> None:
    from fleet.ingest import auth

    clear_auth_cache()
    auth._generation["read_at"] = float("-inf")


@pytest.fixture
def compressor(db: None) -> AssetModel:
    return services.asset_model_create(
        actor=None,
        code="comp-test",
        name="Test compressor",
        heartbeat_interval_seconds=60,
        metrics=[
            services.metric("run_hours", "Run hours", "h", "counter"),
            services.metric("energy_kwh", "Energy", "kWh", "counter"),
            services.metric("pressure_bar", "Pressure", "bar", "gauge", "6", "8.5"),
            services.metric("temp_c", "Temperature", "°C", "gauge", "40", "95"),
        ],
    )


def install(customer: Customer, model: AssetModel, serial: str) -> Installed:
    site = SiteFactory(customer=customer)
    asset = services.asset_create(
        actor=None, site=site, model=model, serial_number=serial, name=f"Asset {serial}"
    )
    device, token = services.device_install(actor=None, asset=asset, serial_number=f"GW-{serial}")
    return Installed(asset=asset, device=device, token=token)


def install_with_readings(customer: Customer, model: AssetModel, serial: str, minutes: int = 40) -> Installed:
    """`install`, then a reading a minute over the last `minutes` (ending 10 minutes ago),
    stored by the ingest worker in this process."""
    installed = install(customer, model, serial)
    start = datetime.now(UTC) - timedelta(minutes=minutes + 10)
    items = [
        {"seq": i, "ts": (start + timedelta(minutes=i)).isoformat(), "status": "ok", "fault_code": "",
         "metrics": {"temp_c": 60 + i % 7, "pressure_bar": 7.0, "run_hours": 100 + i / 60, "energy_kwh": i}}
        for i in range(minutes)
    ]  # fmt: skip
    IngestInbox.objects.create(device_id=installed.device.pk, count=len(items), items=items)
    worker.drain()
    return installed


@pytest.fixture
def fleet_a(customer_a: Customer, compressor: AssetModel) -> Installed:
    return install(customer_a, compressor, "A-0001")


@pytest.fixture
def fleet_b(customer_b: Customer, compressor: AssetModel) -> Installed:
    return install(customer_b, compressor, "B-0001")


def deliver_shuffled(
    installed: Installed, history: Sequence[tuple[int, Any, datetime]], rng: random.Random, metric: str
) -> None:
    """Deliver (seq, value, ts) readings of `metric` as a bad network would: shuffled, some
    twice, in random batches, some of which are drained early; then drain the rest."""
    delivered = [h for h in history for _ in range(rng.choice([1, 1, 2]))]
    rng.shuffle(delivered)
    while delivered:
        size = rng.randint(1, 8)
        chunk, delivered = delivered[:size], delivered[size:]
        items = [
            {"seq": seq, "ts": ts.astimezone(UTC).isoformat(), "status": "ok", "fault_code": "",
             "metrics": {metric: float(value)}}
            for seq, value, ts in chunk
        ]  # fmt: skip
        IngestInbox.objects.create(device_id=installed.device.pk, count=len(items), items=items)
        if rng.random() < 0.5:
            worker.drain()
    worker.drain()
