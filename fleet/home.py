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
