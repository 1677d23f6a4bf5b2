"""`scoped_get`: an id from a request, resolved through the caller's scope; foreign = missing."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.http import Http404

from fleet.models import Site
from portal.models import Customer, User
from portal.tenancy import scoped_get, scoped_get_many, scoped_get_or_none
from tests.factories import SiteFactory

MISSING = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def sites(customer_a: Customer, customer_b: Customer) -> tuple[Site, Site]:
    return SiteFactory(customer=customer_a, name="Own"), SiteFactory(customer=customer_b, name="Foreign")


def test_own_rows_are_found(viewer_a: User, sites: tuple[Site, Site]) -> None:
    own, _ = sites
    scope = Site.objects.visible_to(viewer_a)

    assert scoped_get(scope, str(own.pk), field="site") == own
    assert scoped_get(scope, own.pk) == own
    assert scoped_get_many(scope, [own.pk, str(own.pk)], field="sites") == [own]


@pytest.mark.parametrize("which", ["foreign", "missing", "malformed", "empty"])
def test_foreign_missing_and_malformed_ids_get_the_same_answer(
    viewer_a: User, sites: tuple[Site, Site], which: str
) -> None:
    pk = {"foreign": str(sites[1].pk), "missing": MISSING, "malformed": "42", "empty": ""}[which]
    scope = Site.objects.visible_to(viewer_a)

    with pytest.raises(ValidationError) as body_error:
        scoped_get(scope, pk, field="site")
    with pytest.raises(Http404):
        scoped_get(scope, pk)
    with pytest.raises(ValidationError) as many_error:
        scoped_get_many(scope, [str(sites[0].pk), pk], field="sites", what="site")

    assert body_error.value.message_dict == {"site": ["Unknown site."]}
    assert many_error.value.message_dict == {"sites": ["Unknown site."]}
    assert scoped_get_or_none(scope, pk) is None
