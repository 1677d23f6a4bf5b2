"""The support cast: an alarm rule that opens P1 tickets, and raising its alarm."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from fleet import alarms
from fleet.models import Alarm, AlarmRule, AssetModel, MaintenanceWindow
from portal.models import Customer, User
from support import services
from support.models import Ticket
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


def socket_headers(user: User) -> list[tuple[bytes, bytes]]:
    """What a logged-in browser sends when it opens /ws/live/ (for a WebsocketCommunicator)."""
    client = Client()
    client.force_login(user)
    return [(b"origin", b"http://testserver"), (b"host", b"testserver"),
            (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]  # fmt: skip


def opened_before(customer: Customer, installed: Installed, author: User, now: datetime) -> Ticket:
    """A ticket about the installed asset, opened two hours before `now`."""
    return services.ticket_open(
        actor=author, customer=customer, subject="Hums", description="x", asset=installed.asset,
        at=now - timedelta(hours=2),
    )  # fmt: skip


def window_before(customer: Customer, installed: Installed, now: datetime) -> MaintenanceWindow:
    """A planned hour of maintenance of the installed asset, over half an hour before `now`: the
    pause it gives a ticket opened earlier is exactly one hour, whenever the sweep runs."""
    window = MaintenanceWindow.objects.create(
        customer=customer, title="Service", status="planned", starts_at=now - timedelta(minutes=90),
        ends_at=now - timedelta(minutes=30),
    )  # fmt: skip
    window.assets.set([installed.asset])
    return window
