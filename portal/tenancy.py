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

from django.core.exceptions import ValidationError
from django.db import models
from django.http import Http404

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
    """Row scoping by customer. `customer_lookup` is the lookup that holds the tenant's id
    (`pk` on the tenant itself)."""

    customer_lookup = "customer_id"

    def for_customer(self, customer: Customer | Any) -> Self:
        customer_id = getattr(customer, "pk", customer)
        return self.filter(**{self.customer_lookup: customer_id})

    def visible_to(self, user: Any) -> Self:
        scope = customer_id_scope(user)
        if scope is False:
            return self.none()
        if scope is None:
            return self.all()
        return self.filter(**{self.customer_lookup: scope})


class CatalogueQuerySet(models.QuerySet[_M]):
    """The provider's catalogue (asset models): no tenant's data, readable by every active user."""

    def visible_to(self, user: Any) -> Self:
        return self.none() if customer_id_scope(user) is False else self.all()


class StaffOnlyQuerySet(models.QuerySet[_M]):
    """Provider-side records (invoice runs): staff see them all, customer users none."""

    def visible_to(self, user: Any) -> Self:
        return self.all() if customer_id_scope(user) is None else self.none()


def scoped_get(queryset: models.QuerySet[_M], pk: Any, *, field: str | None = None, what: str = "") -> _M:
    """The row with id `pk` in a scoped queryset, the one way an id from a request is resolved.

    Another customer's id, a missing one and a malformed one get the same answer: `Http404` for
    an id in the path (`field=None`), else a `ValidationError` on `field` ("Unknown site."), which
    pages show and the API answers as a 400 field error (docs/api.md#conventions).
    """
    found = scoped_get_or_none(queryset, pk)
    if found is not None:
        return found
    if field is None:
        raise Http404
    raise ValidationError({field: f"Unknown {what or field}."})


def scoped_get_or_none(queryset: models.QuerySet[_M], pk: Any) -> _M | None:
    """`scoped_get` for an optional id: `None` for a missing, foreign or malformed one."""
    if pk is None or pk == "":
        return None
    try:
        return queryset.filter(pk=pk).first()
    except (ValueError, TypeError, ValidationError):  # not an id of this model's kind at all
        return None


def scoped_get_many(queryset: models.QuerySet[_M], ids: list[Any], *, field: str, what: str = "") -> list[_M]:
    """Every row of `ids` from a scoped queryset, or the `scoped_get` field error if one is not there."""
    try:
        rows = list(queryset.filter(pk__in=ids))
    except (ValueError, TypeError, ValidationError):
        rows = []
    if len(rows) != len({str(i) for i in ids}):
        raise ValidationError({field: f"Unknown {what or field}."})
    return rows


class TenantOwned(models.Model):
    """Abstract base of every tenant-owned model: a non-null customer, scoped queries."""

    customer = models.ForeignKey("portal.Customer", on_delete=models.PROTECT, related_name="%(class)ss")

    objects = TenantQuerySet.as_manager()

    class Meta:
        abstract = True
