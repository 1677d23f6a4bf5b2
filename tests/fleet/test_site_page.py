"""The site page lists the site's machines: the viewer's tenant's only; a foreign site is 404."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection
from django.test.utils import CaptureQueriesContext

from fleet.models import AssetStatus
from portal.models import Customer, User
from tests.conftest import client_for
from tests.factories import AssetFactory, SiteFactory


def test_the_site_page_lists_its_machines(viewer_a: User, customer_a: Customer) -> None:
    site = SiteFactory(customer=customer_a, name="North plant")
    seen = AssetFactory(
        site=site,
        name="Compressor N1",
        status=AssetStatus.ONLINE,
        last_seen_at=datetime(2026, 12, 7, 8, 47, tzinfo=UTC),
    )
    unseen = AssetFactory(site=site, name="Chiller N2")
    AssetFactory(site=SiteFactory(customer=customer_a), name="Pump S1")  # at another site

    response = client_for(viewer_a).get(f"/sites/{site.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "appear here once equipment reports in" not in html
    rows = {asset.pk: asset for asset in response.context["assets"]}
    assert set(rows) == {seen.pk, unseen.pk}
    assert f'href="/fleet/assets/{seen.pk}/"' in html
    assert f'href="/fleet/assets/{unseen.pk}/"' in html
    assert seen.model.name in html
    assert "Online" in html
    assert "Never seen" in html
    assert '<time datetime="2026-12-07T' in html  # the last heartbeat, in the user's zone
    assert "Pump S1" not in html


def test_a_site_without_machines_says_so(viewer_a: User, customer_a: Customer) -> None:
    site = SiteFactory(customer=customer_a)
    response = client_for(viewer_a).get(f"/sites/{site.pk}/")
    assert response.status_code == 200
    assert "No machines at this site yet." in response.content.decode()


def test_another_customers_site_is_404_and_shows_none_of_its_machines(
    viewer_a: User, customer_b: Customer
) -> None:
    theirs = SiteFactory(customer=customer_b, name="Their plant")
    AssetFactory(site=theirs, name="Their secret compressor")
    response = client_for(viewer_a).get(f"/sites/{theirs.pk}/")
    assert response.status_code == 404
    assert "Their secret compressor" not in response.content.decode()


def test_staff_see_the_machines_of_any_customers_site(support: User, customer_b: Customer) -> None:
    theirs = SiteFactory(customer=customer_b)
    asset = AssetFactory(site=theirs, name="Their compressor")
    response = client_for(support).get(f"/sites/{theirs.pk}/")
    assert response.status_code == 200
    assert [a.pk for a in response.context["assets"]] == [asset.pk]


def test_the_site_page_takes_the_same_queries_for_one_machine_or_twenty(
    viewer_a: User, customer_a: Customer
) -> None:
    site = SiteFactory(customer=customer_a)
    AssetFactory(site=site)
    client = client_for(viewer_a)
    client.get(f"/sites/{site.pk}/")
    with CaptureQueriesContext(connection) as one:
        client.get(f"/sites/{site.pk}/")
    for _ in range(19):
        AssetFactory(site=site)
    with CaptureQueriesContext(connection) as twenty:
        client.get(f"/sites/{site.pk}/")
    assert len(twenty) == len(one)
