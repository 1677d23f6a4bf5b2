"""Scoping primitives: the only way tenant-owned rows reach a view, API, export, task or consumer.

Every tenant-owned model carries a non-null `customer` foreign key and uses `TenantQuerySet`:

    Site.objects.visible_to(request.user)      # what this user may see (404 for the rest)
    Site.objects.for_customer(customer)        # one tenant, e.g. in a task that got its id

A customer user sees their own customer's rows only; provider staff (support, finance,
operator) see every customer's. Anyone else sees nothing. "Not yours" and "missing" are the
same `DoesNotExist`, so views answer 404 for both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self, TypeVar

from django.db import models

from portal.roles import Capability, can

if TYPE_CHECKING:
    from portal.models import Customer

_M = TypeVar("_M", bound=models.Model)


def customer_id_scope(user: Any) -> str | bool | None:
    """The customer id a user is confined to, `None` for cross-tenant staff, `False` for nobody."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    if can(user, Capability.VIEW_ALL_CUSTOMERS):
        return None
    customer_id = getattr(user, "customer_id", None)
    if customer_id is None:
        return False
    # A deactivated customer's users lose access to its data.
    customer = getattr(user, "customer", None)
    if customer is not None and not customer.is_active:
        return False
    return customer_id


class TenantQuerySet(models.QuerySet[_M]):
    """Row scoping by customer. `customer_field` names the path to the tenant."""

    customer_field = "customer"

    def for_customer(self, customer: Customer | Any) -> Self:
        customer_id = getattr(customer, "pk", customer)
        return self.filter(**{f"{self.customer_field}_id": customer_id})

    def visible_to(self, user: Any) -> Self:
        scope = customer_id_scope(user)
        if scope is False:
            return self.none()
        if scope is None:
            return self.all()
        return self.filter(**{f"{self.customer_field}_id": scope})


class TenantOwned(models.Model):
    """Abstract base of every tenant-owned model: a non-null customer, scoped queries."""

    customer = models.ForeignKey("portal.Customer", on_delete=models.PROTECT, related_name="%(class)ss")

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True
