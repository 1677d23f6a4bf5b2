"""Lists do a constant number of queries however many rows they show."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from fleet.models import Alarm
from portal.models import Customer, User
from tests.conftest import client_for
from tests.factories import AssetFactory, DeviceCredentialFactory, DeviceFactory, SiteFactory


def _queries(user: User, url: str) -> int:
    client = client_for(user)
    client.get(url)  # warm: session, content types
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def _assets(customer: Customer, n: int) -> None:
    site = SiteFactory(customer=customer)
    for _ in range(n):
        asset = AssetFactory(site=site)
        DeviceCredentialFactory(device=DeviceFactory(asset=asset))
        Alarm.objects.create(
            customer=customer, asset=asset, kind="offline", key="offline", severity="critical",
            message="silent", raised_at=timezone.now(),
        )  # fmt: skip


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/assets/",
        "/api/v1/devices/",
        "/api/v1/asset-models/",
        "/api/v1/alarms/",
        "/",
        "/sites/",
        "/fleet/",
    ],
)
def test_fleet_lists_are_constant_in_queries(viewer_a: User, customer_a: Customer, url: str) -> None:
    grow: Callable[[int], None] = lambda n: _assets(customer_a, n)  # noqa: E731
    grow(2)
    few = _queries(viewer_a, url)
    grow(20)
    assert _queries(viewer_a, url) == few
