"""The overview's health column and maintenance badge follow the server live: an evaluation that
changes a score, and a window planned, moved, cancelled or closed, tell the asset's customer and
staff, and nobody else (docs/architecture.md, the live-message rows)."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.utils import timezone

from fleet import windows
from fleet.health import evaluate
from fleet.models import AssetHealth, AssetModel, HealthRule
from portal.models import Customer, User
from tests.fleet.test_health import put_hours
from tests.fleet_fixtures import Installed
from tests.support.test_live_state import _connect, _messages

pytestmark = pytest.mark.django_db(transaction=True)


def drifting(installed: Installed, compressor: AssetModel) -> None:
    """A trend rule of the model, and 48 h of oil temperature rising towards its limit."""
    HealthRule.objects.create(
        asset_model=compressor, name="Oil temperature trend", metric="temp_c", kind="trend",
        comparison="gt", limit=Decimal("85"), horizon_hours=24, lookback_hours=48,
    )  # fmt: skip
    rng = random.Random(1)
    end = timezone.now().replace(minute=0, second=0, microsecond=0)
    put_hours(installed.asset, "temp_c", [50 + 0.5 * i + rng.gauss(0, 0.8) for i in range(48)], end=end)


def test_a_changed_health_goes_to_its_customer_and_staff_only(
    fleet_a: Installed, compressor: AssetModel, viewer_a: User, viewer_b: User, support: User
) -> None:
    drifting(fleet_a, compressor)

    async def scenario() -> None:
        mine, theirs, staff = await _connect(viewer_a), await _connect(viewer_b), await _connect(support)
        await sync_to_async(evaluate)([fleet_a.asset.pk])
        health = await sync_to_async(AssetHealth.objects.get)(asset=fleet_a.asset)
        assert health.risk != "ok"  # the drift is found: the score changed from none
        expected = {"type": "asset.health", "asset": str(fleet_a.asset.pk), "score": health.score,
                    "risk": health.risk}  # fmt: skip
        assert [m for m in await _messages(mine) if m["type"] == "asset.health"] == [expected]
        assert [m for m in await _messages(staff) if m["type"] == "asset.health"] == [expected]
        assert await _messages(theirs) == []  # customer B hears nothing of A's health

        # the same data again: the same score, nothing to tell
        await sync_to_async(evaluate)([fleet_a.asset.pk])
        assert [m for m in await _messages(mine) if m["type"] == "asset.health"] == []
        for socket in (mine, theirs, staff):
            await socket.disconnect()

    async_to_sync(scenario)()


def test_each_window_change_goes_to_its_customer_and_staff_only(
    customer_a: Customer, fleet_a: Installed, viewer_a: User, viewer_b: User, support: User
) -> None:
    now = timezone.now()

    async def scenario() -> None:
        mine, theirs, staff = await _connect(viewer_a), await _connect(viewer_b), await _connect(support)
        plan: Any = sync_to_async(windows.window_plan)
        window = await plan(
            actor=support, customer=customer_a, title="Service", starts_at=now - timedelta(minutes=5),
            ends_at=now + timedelta(hours=2), assets=[fleet_a.asset],
        )  # fmt: skip
        await sync_to_async(windows.window_move)(
            actor=support, window=window, starts_at=window.starts_at, ends_at=now + timedelta(hours=3)
        )
        await sync_to_async(windows.window_close_early)(actor=support, window=window)
        await sync_to_async(windows.window_cancel)(actor=support, window=window)
        told = {"type": "maintenance.changed", "window": str(window.pk)}
        assert [m for m in await _messages(mine) if m["type"] == "maintenance.changed"] == [told] * 4
        assert [m for m in await _messages(staff) if m["type"] == "maintenance.changed"] == [told] * 4
        assert await _messages(theirs) == []  # customer B hears nothing of A's windows
        for socket in (mine, theirs, staff):
            await socket.disconnect()

    async_to_sync(scenario)()
