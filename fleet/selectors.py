from __future__ import annotations

from django.db.models import QuerySet

from fleet.models import Site
from portal.models import User


def site_list(*, actor: User, search: str = "") -> QuerySet[Site]:
    sites = Site.objects.visible_to(actor).select_related("customer")
    if search:
        sites = sites.filter(name__icontains=search)
    return sites.order_by("customer__name", "name")
