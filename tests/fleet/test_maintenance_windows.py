"""Which assets a maintenance window covers, and when (fleet.maintenance)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from fleet.maintenance import in_maintenance, windows_for_assets
from fleet.models import MaintenanceWindow
from portal.models import Customer
from tests.factories import AssetFactory, SiteFactory

pytestmark = pytest.mark.django_db

MARCH = (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))


def _window(customer: Customer, start: datetime, hours: int = 4, **fields: object) -> MaintenanceWindow:
    assets = fields.pop("assets", [])
    window = MaintenanceWindow.objects.create(
        customer=customer, title="Service", starts_at=start, ends_at=start + timedelta(hours=hours), **fields
    )
    window.assets.set(assets)
    return window


def test_a_window_covers_its_assets_else_its_site_else_the_customer(customer_a: Customer) -> None:
    site, other_site = SiteFactory(customer=customer_a), SiteFactory(customer=customer_a)
    one, two, elsewhere = (AssetFactory(site=s) for s in (site, site, other_site))
    foreign = AssetFactory()  # another customer's machine is never in customer A's window
    start = datetime(2026, 3, 10, 8, tzinfo=UTC)
    _window(customer_a, start, assets=[one])
    _window(customer_a, start + timedelta(days=1), site=site)
    _window(customer_a, start + timedelta(days=2))

    spans = windows_for_assets([one.pk, two.pk, elsewhere.pk, foreign.pk], *MARCH)

    day = timedelta(days=1)
    span = timedelta(hours=4)
    assert spans[one.pk] == [(s, s + span) for s in (start, start + day, start + 2 * day)]
    assert spans[two.pk] == [(s, s + span) for s in (start + day, start + 2 * day)]
    assert spans[elsewhere.pk] == [(start + 2 * day, start + 2 * day + span)]
    assert spans[foreign.pk] == []


def test_a_weekly_window_keeps_its_local_time_across_daylight_saving(customer_a: Customer) -> None:
    """Berlin moves its clocks on 29 March 2026: Monday 06:00 local is 05:00 UTC before, 04:00 after."""
    asset = AssetFactory(site__customer=customer_a)
    _window(
        customer_a, datetime(2026, 3, 16, 5, tzinfo=UTC), recurrence="weekly", recurs_until=date(2026, 3, 30)
    )

    spans = windows_for_assets([asset.pk], *MARCH)[asset.pk]

    assert [s for s, _ in spans] == [
        datetime(2026, 3, 16, 5, tzinfo=UTC),
        datetime(2026, 3, 23, 5, tzinfo=UTC),
        datetime(2026, 3, 30, 4, tzinfo=UTC),
    ]


def test_closed_early_proposed_and_cancelled_windows(customer_a: Customer) -> None:
    asset = AssetFactory(site__customer=customer_a)
    start = datetime(2026, 3, 10, 8, tzinfo=UTC)
    _window(customer_a, start, closed_early_at=start + timedelta(hours=1))
    _window(customer_a, start + timedelta(days=1), status="proposed")
    _window(customer_a, start + timedelta(days=2), status="cancelled")

    assert windows_for_assets([asset.pk], *MARCH)[asset.pk] == [(start, start + timedelta(hours=1))]
    assert in_maintenance(asset.pk, start + timedelta(minutes=59))
    assert not in_maintenance(asset.pk, start + timedelta(hours=1))
    assert not in_maintenance(asset.pk, start + timedelta(days=1, hours=1))


def test_overlapping_windows_merge_and_clip_to_the_range(customer_a: Customer) -> None:
    asset = AssetFactory(site__customer=customer_a)
    _window(customer_a, datetime(2026, 2, 28, 22, tzinfo=UTC), hours=4)  # into March
    _window(customer_a, datetime(2026, 3, 1, 1, tzinfo=UTC), hours=2, assets=[asset])

    assert windows_for_assets([asset.pk], *MARCH)[asset.pk] == [
        (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 1, 3, tzinfo=UTC))
    ]
