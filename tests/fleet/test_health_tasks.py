"""The beat's health sweep through a real Celery worker: batches queued, evaluated, alarms raised."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from fleet.health.tasks import health_sweep
from fleet.models import Alarm, AssetHealth, AssetModel, HealthRule
from portal.models import Customer
from tests.fleet.test_health import put_hours
from tests.fleet_fixtures import install
from tests.integration import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_sweep_evaluates_every_asset_with_rules_in_the_worker(
    live_worker: Any, customer_a: Customer, compressor: AssetModel
) -> None:
    HealthRule.objects.create(
        asset_model=compressor, name="Oil temperature trend", metric="temp_c", kind="trend",
        comparison="gt", limit=Decimal("85"), horizon_hours=24, lookback_hours=48,
    )  # fmt: skip
    drifting = install(customer_a, compressor, "T-1").asset
    steady = install(customer_a, compressor, "T-2").asset
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    put_hours(drifting, "temp_c", [50 + 0.5 * i for i in range(48)], end=end)
    put_hours(steady, "temp_c", [60.0 + (i % 2) for i in range(48)], end=end)

    health_sweep.delay()  # one batch of two (HEALTH_BATCH_SIZE 500)
    wait_until(lambda: AssetHealth.objects.count() == 2, "both assets evaluated")

    (alarm,) = Alarm.objects.filter(state="raised")
    assert (alarm.asset_id, alarm.kind) == (drifting.pk, "prediction")
    assert AssetHealth.objects.get(asset=steady).score == 100
    # run again: nothing new (one active alarm per asset and key)
    health_sweep.delay()
    wait_until(lambda: AssetHealth.objects.filter(evaluated_at__gt=alarm.raised_at).count() == 2, "again")
    assert Alarm.objects.filter(asset=drifting).count() == 1
    assert timedelta(0) < alarm.expected_at - alarm.raised_at < timedelta(hours=24)  # type: ignore[operator]
