"""The billing cast: a plan, a contract per customer covering its fleet asset, customer A's
finalized invoice, usage helpers."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from billing import services
from billing.invoicing import bill_period
from billing.models import Contract, Invoice, Plan
from fleet.models import Asset, AssetStatusChange, HourlyUsage
from portal.models import Customer
from tests.fleet_fixtures import Installed

CREDITS = [{"below": "99.5", "credit_percent": "5"}, {"below": "99", "credit_percent": "10"}]


@pytest.fixture
def plan(compressor: object) -> Plan:
    return services.plan_create(
        actor=None,
        code="flex",
        name="Flex",
        currency="EUR",
        period_fee=Decimal("100.00"),
        components=[
            {"metric": "run_hours", "label": "Run hours", "unit": "h", "charge_model": "per_unit",
             "unit_price": Decimal("0.50")},
            {"metric": "energy_kwh", "label": "Energy", "unit": "kWh", "charge_model": "graduated",
             "tiers": [{"up_to": "1000", "unit_price": "0.20"}, {"up_to": None, "unit_price": "0.10"}]},
        ],
    )  # fmt: skip


def contract_for(customer: Customer, plan: Plan, asset: Asset, start: date, **extra: object) -> Contract:
    return services.contract_create(
        actor=None,
        customer=customer,
        plan=plan,
        start_date=start,
        assets=[asset],
        uptime_target=Decimal("99.5"),
        service_credits=CREDITS,
        first_response_minutes={"P1": 60, "P2": 240, "P3": 1440, "P4": 2880},
        resolution_minutes={"P1": 480, "P2": 1440, "P3": 4320, "P4": 10080},
        **extra,
    )


@pytest.fixture
def contract_a(customer_a: Customer, plan: Plan, fleet_a: Installed) -> Contract:
    return contract_for(customer_a, plan, fleet_a.asset, date(2026, 1, 1))


@pytest.fixture
def contract_b(customer_b: Customer, plan: Plan, fleet_b: Installed) -> Contract:
    return contract_for(customer_b, plan, fleet_b.asset, date(2026, 1, 1))


@pytest.fixture
def invoice_a(contract_a: Contract, fleet_a: Installed) -> Invoice:
    """Customer A's invoice for October 2026 (10 run hours of its asset), finalized."""
    usage(fleet_a.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "10")
    bill_period("2026-10", now=datetime(2026, 11, 5, tzinfo=UTC))
    return services.invoice_finalize(actor=None, invoice=Invoice.objects.get(contract=contract_a))


def usage(asset: Asset, hour: datetime, quantity: str, metric: str = "run_hours") -> HourlyUsage:
    row, _ = HourlyUsage.objects.update_or_create(
        asset=asset, metric=metric, hour=hour,
        defaults={"customer_id": asset.customer_id, "quantity": Decimal(quantity)},
    )  # fmt: skip
    return row


def status_change(asset: Asset, status: str, at: datetime, previous: str = "online") -> None:
    AssetStatusChange.objects.create(
        customer_id=asset.customer_id, asset=asset, status=status, previous=previous, at=at
    )
