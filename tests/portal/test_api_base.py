"""The API's base viewset applies `visible_to` itself: a subclass can narrow, never widen."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework import mixins, serializers
from rest_framework.test import APIRequestFactory, force_authenticate

from fleet.models import Site
from portal.api.base import TenantScopedViewSet
from portal.models import Customer, User
from portal.roles import Capability
from tests.factories import SiteFactory


class _SiteNames(serializers.ModelSerializer[Site]):
    class Meta:
        model = Site
        fields = ["id", "name"]


class WideningSites(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """A careless subclass: its narrow() ignores the scoped rows it is given and takes every site."""

    model = Site
    serializer_class = _SiteNames
    capabilities = {"*": (Capability.VIEW_FLEET,)}

    def narrow(self, queryset: Any) -> Any:
        return Site.objects.all().order_by("name")


def _call(user: User, action: str, **kwargs: Any) -> Any:
    request = APIRequestFactory().get("/")
    force_authenticate(request, user=user)
    return WideningSites.as_view({"get": action})(request, **kwargs)


def test_a_narrow_that_widens_still_sees_only_the_users_customer(
    viewer_a: User, customer_a: Customer, customer_b: Customer
) -> None:
    own = SiteFactory(customer=customer_a, name="Own plant")
    foreign = SiteFactory(customer=customer_b, name="Foreign plant")

    listed = _call(viewer_a, "list")
    detail = _call(viewer_a, "retrieve", pk=str(foreign.pk))

    names = {row["name"] for row in listed.data["results"]}
    assert own.name in names
    assert foreign.name not in names
    assert set(Site.objects.filter(name__in=names).values_list("customer_id", flat=True)) == {customer_a.pk}
    assert detail.status_code == 404


def test_a_narrow_that_widens_gives_staff_everything_as_before(
    support: User, customer_a: Customer, customer_b: Customer
) -> None:
    SiteFactory(customer=customer_a, name="A plant")
    SiteFactory(customer=customer_b, name="B plant")

    assert {"A plant", "B plant"} <= {row["name"] for row in _call(support, "list").data["results"]}


@pytest.mark.parametrize("name", ["get_queryset", "scoped_queryset", "queryset"])
def test_a_subclass_cannot_replace_the_scoped_queryset(name: str) -> None:
    with pytest.raises(TypeError, match="narrow"):
        type("Replacing", (TenantScopedViewSet,), {"model": Site, name: lambda self: Site.objects.all()})


def test_narrow_must_return_rows_of_the_views_model(viewer_a: User) -> None:
    class OtherRows(WideningSites):
        def narrow(self, queryset: Any) -> Any:
            return Customer.objects.all()

    request = APIRequestFactory().get("/")
    force_authenticate(request, user=viewer_a)
    with pytest.raises(TypeError, match="Customer"):
        OtherRows.as_view({"get": "list"})(request)
