"""A proactive ticket shows the maintenance window it proposes: to staff at once, to the
customer once support has planned it."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from fleet.models import Asset, MaintenanceWindow
from portal.models import Customer, User
from support import services
from support.models import Category, Ticket
from tests.conftest import client_for
from tests.factories import AssetFactory


def _proactive(customer: Customer, asset: Asset, status: str) -> tuple[Ticket, MaintenanceWindow]:
    start = timezone.now() + timedelta(days=1)
    window = MaintenanceWindow.objects.create(
        customer=customer, title="Replace the oil cooler", status=status,
        starts_at=start, ends_at=start + timedelta(hours=2),
    )  # fmt: skip
    window.assets.set([asset])
    ticket = services.ticket_open(
        actor=None, customer=customer, subject="Oil temperature predicted to exceed 85 °C",
        description="A prediction.", category=Category.MAINTENANCE, asset=asset,
    )  # fmt: skip
    Ticket.objects.filter(pk=ticket.pk).update(maintenance_window=window)
    return ticket, window


def test_staff_see_the_proposed_window_the_customer_only_the_planned_one(
    support: User, admin_a: User, customer_a: Customer
) -> None:
    asset = AssetFactory(site__customer=customer_a)
    ticket, window = _proactive(customer_a, asset, "proposed")
    url = f"/support/tickets/{ticket.pk}/"

    staff_page = client_for(support).get(url).content.decode()
    assert 'data-testid="ticket-window"' in staff_page
    assert "Replace the oil cooler" in staff_page
    assert 'data-testid="ticket-window"' not in client_for(admin_a).get(url).content.decode()

    MaintenanceWindow.objects.filter(pk=window.pk).update(status="planned")
    customer_page = client_for(admin_a).get(url).content.decode()
    assert 'data-testid="ticket-window"' in customer_page
    assert f"/fleet/maintenance/{window.pk}/" in customer_page
