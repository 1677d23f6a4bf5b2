"""The fleet overview in pages of 50: filters and order apply before the paging, the links keep
them, a customer's pages count only its own assets, and a bad ?page= never answers 500."""

from __future__ import annotations

import re

from django.db import connection
from django.test.utils import CaptureQueriesContext

from fleet.models import Asset, AssetStatus
from fleet.selectors import OVERVIEW_PAGE_SIZE
from portal.models import Customer, User
from tests.conftest import client_for
from tests.factories import AssetFactory, AssetModelFactory, SiteFactory


def _fleet(customer: Customer, name: str, n: int) -> None:
    site = SiteFactory(customer=customer)
    for i in range(n):
        AssetFactory(site=site, name=f"{name} {i:03d}", serial_number=f"{customer.slug}-{name}-{i:03d}")


def _rows(html: str) -> list[str]:
    return re.findall(r'<tr data-asset-id="([0-9a-f-]+)"', html)


def _page(user: User, **query: str) -> str:
    response = client_for(user).get("/fleet/", query)
    assert response.status_code == 200
    return response.content.decode()


def test_the_overview_shows_a_page_and_its_links_keep_the_filters(
    customer_a: Customer, viewer_a: User
) -> None:
    _fleet(customer_a, "Pump", 55)
    _fleet(customer_a, "Fan", 20)

    first = _page(viewer_a)
    assert len(_rows(first)) == OVERVIEW_PAGE_SIZE
    assert "Page 1 of 2" in first
    assert "Assets 1–50 of 75" in first
    assert 'href="?page=2" rel="next"' in first
    second = _page(viewer_a, page="2")
    assert len(_rows(second)) == 25
    assert not set(_rows(first)) & set(_rows(second))  # no asset on two pages

    # The search applies before the paging: 55 pumps, in two pages, the links keeping it.
    pumps = _page(viewer_a, q="pump", sort="risk")
    assert "Page 1 of 2" in pumps
    assert "Assets 1–50 of 55" in pumps
    assert 'href="?q=pump&amp;sort=risk&amp;page=2" rel="next"' in pumps
    rest = _page(viewer_a, q="pump", sort="risk", page="2")
    assert len(_rows(rest)) == 5
    assert 'href="?q=pump&amp;sort=risk&amp;page=1" rel="prev"' in rest
    shown = set(_rows(pumps)) | set(_rows(rest))
    pumps_all = Asset.objects.filter(name__startswith="Pump").values_list("pk", flat=True)
    assert shown == {str(pk) for pk in pumps_all}
    # A filter that fits one page has no page links.
    fans = _page(viewer_a, q="fan")
    assert len(_rows(fans)) == 20
    assert "data-pages" not in fans
    assert "20 assets" in fans


def test_the_tiles_count_the_whole_fleet_not_the_page(customer_a: Customer, viewer_a: User) -> None:
    _fleet(customer_a, "Pump", 60)
    Asset.objects.filter(name__in=["Pump 000", "Pump 059"]).update(status=AssetStatus.FAULT)
    html = _page(viewer_a, page="2")
    assert re.search(r'data-tile="fault">\s*<span class="tile-count" data-count>2<', html)


def test_a_customers_pages_count_only_its_own_assets(
    customer_a: Customer, customer_b: Customer, viewer_a: User, viewer_b: User
) -> None:
    _fleet(customer_a, "Alpha", 60)
    _fleet(customer_b, "Bravo", 120)
    mine = {str(pk) for pk in Asset.objects.filter(customer=customer_a).values_list("pk", flat=True)}
    first, last = _page(viewer_a), _page(viewer_a, page="2")
    assert "Page 1 of 2" in first
    assert "Assets 1–50 of 60" in first
    assert set(_rows(first)) | set(_rows(last)) == mine
    assert "Bravo" not in first + last
    # Past A's last page is A's last page, never B's rows.
    assert set(_rows(_page(viewer_a, page="3"))) == set(_rows(last))
    assert "Page 1 of 3" in _page(viewer_b)


def test_a_bad_page_number_is_the_first_or_the_last_page(customer_a: Customer, viewer_a: User) -> None:
    """Django's `Paginator.get_page`: not a number → page 1, out of range → the last page."""
    _fleet(customer_a, "Pump", 60)
    first, last = _rows(_page(viewer_a)), _rows(_page(viewer_a, page="2"))
    for bad in ("abc", "1.5", "", "%00", "9" * 40):
        assert _rows(_page(viewer_a, page=bad)) == (last if bad == "9" * 40 else first), bad
    for beyond in ("3", "0", "-1", "99999"):
        assert _rows(_page(viewer_a, page=beyond)) == last, beyond


def test_the_overview_reads_as_many_queries_for_any_page(customer_a: Customer, viewer_a: User) -> None:
    _fleet(customer_a, "Pump", 110)
    client = client_for(viewer_a)
    client.get("/fleet/")  # warm: session, content types
    counts = []
    for page in ("1", "2", "3"):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/fleet/", {"page": page}).status_code == 200
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1] == counts[2]


def test_the_model_filter_lists_only_the_models_of_the_customers_own_assets(
    customer_a: Customer, customer_b: Customer, viewer_a: User, viewer_b: User
) -> None:
    ours = AssetModelFactory(code="ours", name="Ours compressor")
    theirs = AssetModelFactory(code="theirs", name="Theirs chiller")
    AssetFactory(site=SiteFactory(customer=customer_a), model=ours)
    AssetFactory(site=SiteFactory(customer=customer_a), model=ours)  # listed once, not per asset
    AssetFactory(site=SiteFactory(customer=customer_b), model=theirs)

    def listed(user: User) -> list[str]:
        return re.findall(
            r'<option value="([^"]+)"[^>]*>[^<]*</option>',
            _page(user).split('name="model"')[1].split("</select>")[0],
        )

    assert listed(viewer_a) == ["ours"]
    assert listed(viewer_b) == ["theirs"]
