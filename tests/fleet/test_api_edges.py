"""Extreme and malformed inputs to the fleet API answer a 4xx naming the field, never a 500."""

from __future__ import annotations

import pytest

from portal.models import User
from tests.conftest import client_for
from tests.fleet_fixtures import Installed


def _field_errors(response: object) -> list[str | None]:
    return [e["field"] for e in response.json()["errors"]]


@pytest.mark.parametrize("series", ["telemetry", "usage"])
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"to": "0001-01-01T00:00:00Z"}, "to"),
        ({"from": "0001-01-01T00:00:00Z"}, "from"),
        ({"to": "9999-12-31T23:59:59Z"}, "to"),
        ({"from": "9999-12-31T23:59:59Z", "to": "9999-12-31T23:59:59Z"}, "from"),
        ({"from": "0001-01-01T00:00:00+01:00"}, "from"),
        ({"to": "9999-12-31T23:59:59-01:00"}, "to"),
    ],
)
def test_series_with_extreme_dates_answer_400_on_the_field(
    viewer_a: User, fleet_a: Installed, series: str, params: dict[str, str], field: str
) -> None:
    metric = "temp_c" if series == "telemetry" else "run_hours"

    response = client_for(viewer_a).get(
        f"/api/v1/assets/{fleet_a.asset.pk}/{series}/", {"metric": metric, **params}
    )

    assert response.status_code == 400, response.content
    assert field in _field_errors(response)
