from __future__ import annotations

from fleet.selectors import site_list
from portal.home import Panel
from portal.models import User
from portal.roles import Capability, can


def sites_panel(user: User) -> Panel | None:
    if not can(user, Capability.VIEW_FLEET):
        return None
    sites = site_list(actor=user)
    return Panel(
        title="Sites",
        template="fleet/panels/sites.html",
        context={"sites": sites[:10], "site_total": sites.count()},
        order=10,
    )


def fleet_panel(user: User) -> Panel | None:
    if not can(user, Capability.VIEW_FLEET):
        return None
    from django.db.models import Count

    from fleet.models import ACTIVE_ALARM_STATES, Alarm, Asset, AssetStatus

    counts = dict(
        Asset.objects.visible_to(user)
        .values_list("status")
        .annotate(n=Count("id"))
        .values_list("status", "n")
    )
    return Panel(
        title="Equipment",
        template="fleet/panels/fleet.html",
        context={
            "statuses": [
                (s.value, s.label, counts.get(s.value, 0)) for s in AssetStatus if counts.get(s.value)
            ],
            "total": sum(counts.values()),
            "alarms": Alarm.objects.visible_to(user).filter(state__in=ACTIVE_ALARM_STATES).count(),
        },
        order=5,
    )
