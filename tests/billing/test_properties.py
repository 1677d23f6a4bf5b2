"""Properties of billing over generated histories: delivery order never changes the bill, and
re-running a run changes nothing."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import metering
from billing.invoicing import bill_period
from billing.models import Invoice, Plan
from fleet.ingest import worker
from fleet.models import AssetModel, HourlyUsage, IngestInbox
from fleet.usage import usage_truth
from portal.models import Customer
from tests.billing_fixtures import contract_for, status_change, usage
from tests.fleet_fixtures import install

OCTOBER = metering.period_of("2026-10", "Europe/Berlin")
AFTER = datetime(2026, 11, 5, tzinfo=UTC)
PROPERTY = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

steps = st.lists(
    st.tuples(
        st.sampled_from(["up", "up", "up", "reset"]),
        st.decimals(min_value=0, max_value=40, places=2, allow_nan=False, allow_infinity=False),
        st.integers(min_value=5, max_value=600),  # minutes to the next reading
    ),
    min_size=2,
    max_size=30,
)


@PROPERTY
@given(history_steps=steps, seed=st.integers(0, 2**32 - 1), start_offset=st.integers(-2000, 40_000))
def test_contract_usage_does_not_depend_on_delivery(
    customer_a: Customer,
    compressor: AssetModel,
    plan: Plan,
    history_steps: list[tuple[str, Decimal, int]],
    seed: int,
    start_offset: int,
) -> None:
    rng = random.Random(seed)
    installed = install(customer_a, compressor, f"PB-{uuid.uuid4().hex[:10]}")
    contract = contract_for(customer_a, plan, installed.asset, date(2026, 1, 1))
    # A history that may start before October and run past it (minutes from October's start).
    history: list[tuple[int, float, datetime]] = []
    value, ts = Decimal("500"), OCTOBER.start + timedelta(minutes=start_offset)
    for seq, (kind, amount, minutes) in enumerate(history_steps):
        value = amount if kind == "reset" else value + amount
        history.append((seq, float(value), ts))
        ts += timedelta(minutes=minutes)
    delivered = [h for h in history for _ in range(rng.choice([1, 2]))]
    rng.shuffle(delivered)
    while delivered:
        size = rng.randint(1, 6)
        chunk, delivered = delivered[:size], delivered[size:]
        IngestInbox.objects.create(
            device_id=installed.device.pk,
            count=len(chunk),
            items=[
                {"seq": s, "ts": t.isoformat(), "status": "ok", "fault_code": "", "metrics": {"run_hours": v}}
                for s, v, t in chunk
            ],
        )
        if rng.random() < 0.4:
            worker.drain()
    worker.drain()

    truth = sum(
        (q for hour, q in usage_truth(history).items() if OCTOBER.start <= hour < OCTOBER.end), Decimal("0")
    )
    metered = (
        metering.quantities([contract.pk], OCTOBER).get(str(contract.pk), {}).get("run_hours", Decimal("0"))
    )
    assert metered == truth


def snapshot() -> list[tuple[Any, ...]]:
    rows = []
    for invoice in Invoice.objects.order_by("contract__number"):
        lines = tuple((x.kind, x.metric, x.quantity, x.amount) for x in invoice.lines.order_by("position"))
        rows.append(
            (invoice.pk, invoice.status, invoice.subtotal, invoice.tax, invoice.total, invoice.uptime, lines)
        )
    return rows


@PROPERTY
@given(
    hours=st.lists(
        st.tuples(
            st.integers(min_value=-30, max_value=760),  # hours from October's start (some outside)
            st.decimals(min_value=0, max_value=999, places=3, allow_nan=False, allow_infinity=False),
            st.sampled_from(["run_hours", "energy_kwh"]),
            st.booleans(),  # which of the two assets
        ),
        max_size=40,
    ),
    outages=st.lists(st.tuples(st.integers(0, 740), st.integers(1, 48)), max_size=3),
)
def test_re_running_a_run_changes_nothing(
    customer_a: Customer,
    compressor: AssetModel,
    plan: Plan,
    hours: list[tuple[int, Decimal, str, bool]],
    outages: list[tuple[int, int]],
) -> None:
    Invoice.objects.filter(status="draft").delete()
    HourlyUsage.objects.all().delete()
    first = install(customer_a, compressor, f"RR-{uuid.uuid4().hex[:10]}")
    second = install(customer_a, compressor, f"RR-{uuid.uuid4().hex[:10]}")
    contract_for(customer_a, plan, first.asset, date(2026, 1, 1))
    contract_for(customer_a, plan, second.asset, date(2026, 10, 9))
    for offset, quantity, metric, which in hours:
        usage(
            (first if which else second).asset, OCTOBER.start + timedelta(hours=offset), str(quantity), metric
        )
    for start, length in outages:
        status_change(first.asset, "offline", OCTOBER.start + timedelta(hours=start))
        status_change(
            first.asset, "online", OCTOBER.start + timedelta(hours=start + length), previous="offline"
        )

    bill_period("2026-10", now=AFTER)
    once = snapshot()
    counts = bill_period("2026-10", now=AFTER)

    assert snapshot() == once
    assert counts["created"] == 0
    for invoice in Invoice.objects.all():
        assert invoice.subtotal == sum(line.amount for line in invoice.lines.all())
        assert invoice.total == invoice.subtotal + invoice.tax
