"""The support cast: an alarm rule that opens P1 tickets, and raising its alarm."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from fleet import alarms
from fleet.models import Alarm, AlarmRule, AssetModel
from tests.fleet_fixtures import Installed


@pytest.fixture
def hot_rule(compressor: AssetModel) -> AlarmRule:
    return AlarmRule.objects.create(
        asset_model=compressor, name="Oil overheating", metric="temp_c", comparison="gt",
        threshold=Decimal("95"), severity="critical", ticket_priority="P1",
    )  # fmt: skip


def raise_alarm(installed: Installed, rule: AlarmRule, at: datetime | None = None) -> Alarm | None:
    return alarms.alarm_raise(
        asset=installed.asset, key=alarms.rule_key(rule), kind="threshold", severity="critical",
        message="Oil temperature 97 °C", at=at or timezone.now(), rule=rule, value=Decimal("97"),
    )  # fmt: skip
