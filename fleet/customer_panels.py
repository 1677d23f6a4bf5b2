"""Fleet's panel of the customer overview (portal/customer_overview.py): the customer's sites
and machines with their live status. A fixed number of queries however large the fleet."""

from __future__ import annotations

from django.db.models import Count

from fleet.models import Asset, AssetStatus, Site
from portal.home import Panel
from portal.models import Customer, User
from portal.roles import Capability, can

LIMIT = 25  # rows of each list; the fleet pages list the rest


def fleet_panel(actor: User, customer: Customer) -> Panel | None:
    if not can(actor, Capability.VIEW_FLEET):
        return None
    sites = Site.objects.visible_to(actor).for_customer(customer)
    assets = Asset.objects.visible_to(actor).for_customer(customer)
    by_status = dict(assets.values_list("status").annotate(n=Count("pk")).order_by())
    labels = dict(AssetStatus.choices)
    return Panel(
        title="Sites and machines",
        template="fleet/panels/customer_fleet.html",
        order=10,
        context={
            "sites": list(sites.annotate(asset_count=Count("assets")).order_by("name")[:LIMIT]),
            "site_count": sites.count(),
            "assets": list(assets.select_related("site", "model").order_by("name")[:LIMIT]),
            "asset_count": sum(by_status.values()),
            "statuses": [(s, labels[s], by_status[s]) for s in AssetStatus.values if by_status.get(s)],
            "limit": LIMIT,
        },
    )
