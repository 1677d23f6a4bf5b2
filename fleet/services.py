from __future__ import annotations

from django.db import transaction

from fleet.models import Site
from portal.models import Customer, User
from portal.services import audit_record


@transaction.atomic
def site_create(
    *, actor: User | None, customer: Customer, name: str, address: str = "", time_zone: str = ""
) -> Site:
    site = Site(customer=customer, name=name, address=address, time_zone=time_zone)
    site.full_clean()
    site.save()
    audit_record(actor=actor, action="site.created", target=site)
    return site
