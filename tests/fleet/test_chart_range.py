"""The asset page's custom chart range: a reversed one is a 400 with a field error, on the page
and in the API that draws the charts; a good one reaches the page script in the user's zone."""

from __future__ import annotations

import json
import re

import pytest

from fleet.models import AssetModel
from portal.models import Customer, User
from tests.conftest import client_for
from tests.fleet.conftest import install


@pytest.fixture
def asset_url(customer_a: Customer, compressor: AssetModel) -> str:
    return f"/fleet/assets/{install(customer_a, compressor, 'RANGE-A1').asset.pk}/"


def chart_range(html: str) -> object:
    found = re.search(r'<script id="chart-range" type="application/json">(.*?)</script>', html)
    assert found, "the page has no chart-range"
    return json.loads(found.group(1))


def test_a_reversed_range_is_a_400_with_the_error_at_from(viewer_a: User, asset_url: str) -> None:
    response = client_for(viewer_a).get(asset_url, {"from": "2026-12-07T10:00", "to": "2026-12-07T09:00"})
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-testid="range-error"' in html
    assert "From: Must be before “to”." in html
    assert re.search(r'name="from" value="2026-12-07T10:00"[^>]*aria-invalid="true"', html)
    assert chart_range(html) is None  # the charts keep the default range


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"from": "2026-12-07T10:00", "to": "2026-12-07T10:00"}, "From: Must be before “to”."),
        ({"from": "2026-12-07T10:00"}, "To: This field is required."),
        ({"from": "yesterday", "to": "2026-12-07T10:00"}, "From: Enter a valid date/time."),
    ],
    ids=["empty", "one-end", "not-a-time"],
)
def test_other_bad_ranges_are_400s_naming_the_field(
    viewer_a: User, asset_url: str, query: dict[str, str], field: str
) -> None:
    response = client_for(viewer_a).get(asset_url, query)
    assert response.status_code == 400
    assert field in response.content.decode()


def test_a_good_range_reaches_the_page_in_the_users_zone(viewer_a: User, asset_url: str) -> None:
    # Alpha Dairy's users see Europe/Berlin: 09:00 there is 08:00 UTC.
    response = client_for(viewer_a).get(asset_url, {"from": "2026-12-07T09:00", "to": "2026-12-07T11:30"})
    assert response.status_code == 200
    assert chart_range(response.content.decode()) == {
        "from": "2026-12-07T09:00:00+01:00",
        "to": "2026-12-07T11:30:00+01:00",
    }


def test_no_range_is_the_default(viewer_a: User, asset_url: str) -> None:
    response = client_for(viewer_a).get(asset_url)
    assert response.status_code == 200
    assert chart_range(response.content.decode()) is None


@pytest.mark.parametrize("series", ["telemetry/?metric=temp_c", "usage/?metric=run_hours"])
def test_the_api_refuses_a_reversed_range_with_a_field_error(
    viewer_a: User, customer_a: Customer, compressor: AssetModel, series: str
) -> None:
    asset = install(customer_a, compressor, "RANGE-A2").asset
    response = client_for(viewer_a).get(
        f"/api/v1/assets/{asset.pk}/{series}&from=2026-12-07T10:00:00Z&to=2026-12-07T09:00:00Z"
    )
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "from", "message": "Must be before `to`."}]
