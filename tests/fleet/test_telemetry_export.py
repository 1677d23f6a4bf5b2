"""An asset's telemetry as CSV (fleet/export.py): raw readings and rollups, streamed, bounded,
validated and scoped to the asset's customer."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from fleet import export
from fleet.ingest import worker
from fleet.models import IngestInbox
from portal.models import Customer, User
from tests.conftest import client_for
from tests.fleet.conftest import Installed
from tests.fleet_fixtures import install

T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)


def feed(installed: Installed, count: int, *, first_seq: int = 0) -> None:
    """`count` readings 30 s apart from T0; temp_c climbs by 0.5 each, pressure only on even ones."""
    items = [
        {"seq": first_seq + i, "ts": (T0 + timedelta(seconds=30 * i)).isoformat(), "status": "ok",
         "fault_code": "", "metrics": {"temp_c": 60 + i / 2, **({"pressure_bar": 7.0} if i % 2 == 0 else {})}}
        for i in range(count)
    ]  # fmt: skip
    IngestInbox.objects.create(device_id=installed.device.pk, count=len(items), items=items)
    worker.drain()


def read_csv(client: Client, installed: Installed, **query: str) -> tuple[str, list[list[str]]]:
    response = client.get(f"/api/v1/assets/{installed.asset.pk}/telemetry.csv", query)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/csv"
    text = b"".join(response.streaming_content).decode()
    return response["Content-Disposition"], list(csv.reader(io.StringIO(text)))


def window(hours: float = 2) -> dict[str, str]:
    return {"from": T0.isoformat(), "to": (T0 + timedelta(hours=hours)).isoformat()}


def test_raw_readings_one_row_each_with_a_column_per_metric(viewer_a: User, fleet_a: Installed) -> None:
    feed(fleet_a, 6)
    disposition, rows = read_csv(client_for(viewer_a), fleet_a, **window())
    header, *body = rows
    assert header == [
        "ts",
        "seq",
        "status",
        "fault_code",
        "energy_kwh",
        "pressure_bar",
        "run_hours",
        "temp_c",
    ]
    assert len(body) == 6
    assert body[0] == [T0.isoformat().replace("+00:00", "Z"), "0", "ok", "", "", "7.0", "", "60.0"]
    assert body[1][5] == ""  # no pressure in this reading: an empty cell, not 0
    assert [row[7] for row in body] == ["60.0", "60.5", "61.0", "61.5", "62.0", "62.5"]
    assert disposition.startswith('attachment; filename="A-0001-raw-')


def test_one_metric_and_a_narrower_range(viewer_a: User, fleet_a: Installed) -> None:
    feed(fleet_a, 6)
    to = (T0 + timedelta(seconds=90)).isoformat()
    _, rows = read_csv(client_for(viewer_a), fleet_a, metric="temp_c", **{"from": T0.isoformat(), "to": to})
    assert rows == [["ts", "seq", "status", "fault_code", "temp_c"]] + [
        [
            (T0 + timedelta(seconds=30 * i)).isoformat().replace("+00:00", "Z"),
            str(i),
            "ok",
            "",
            str(60 + i / 2),
        ]
        for i in range(3)
    ]


def test_rollups_per_bucket_and_metric(viewer_a: User, fleet_a: Installed) -> None:
    feed(fleet_a, 6)  # three minutes: two readings each
    _, rows = read_csv(client_for(viewer_a), fleet_a, resolution="minute", **window())
    header, *body = rows
    assert header == ["bucket", "metric", "count", "min", "avg", "max"]
    first = T0.isoformat().replace("+00:00", "Z")
    assert body[:2] == [
        [first, "pressure_bar", "1", "7.0", "7.0", "7.0"],
        [first, "temp_c", "2", "60.0", "60.25", "60.5"],
    ]
    assert len(body) == 6
    _, hours = read_csv(client_for(viewer_a), fleet_a, resolution="hour", metric="temp_c", **window())
    assert hours[1:] == [[first, "temp_c", "6", "60.0", "61.25", "62.5"]]


@pytest.mark.parametrize(
    ("days", "expected"),
    [(1, "raw"), (7.001, "raw"), (8, "raw"), (8.01, "minute"), (31, "minute"), (60, "hour"), (4000, "day")],
)
def test_the_default_resolution_follows_the_range(days: float, expected: str) -> None:
    assert export.default_resolution(T0, T0 + timedelta(days=days)) == expected


def test_bad_queries_answer_400_with_the_field(viewer_a: User, fleet_a: Installed) -> None:
    client = client_for(viewer_a)
    url = f"/api/v1/assets/{fleet_a.asset.pk}/telemetry.csv"
    cases = {
        "metric": {"metric": "rpm"},
        "resolution": {"resolution": "week"},
        "from": {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
        "to": {"to": "yesterday"},
    }
    for field, query in cases.items():
        response = client.get(url, query)
        assert response.status_code == 400, (field, response.content)
        assert [e["field"] for e in response.json()["errors"]] == [field], response.json()
    too_long = client.get(
        url, {"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z", "resolution": "raw"}
    )
    assert too_long.status_code == 400
    assert too_long.json()["errors"] == [
        {"field": "from", "message": "At most 31 days at resolution “raw”: narrow the range."}
    ]


def test_another_customers_asset_is_not_found(
    viewer_a: User, viewer_b: User, fleet_a: Installed, customer_b: Customer
) -> None:
    feed(fleet_a, 4)
    b_asset = install(customer_b, fleet_a.asset.model, "B-EXPORT")
    feed(b_asset, 3, first_seq=0)
    viewer = client_for(viewer_a)
    foreign = viewer.get(f"/api/v1/assets/{b_asset.asset.pk}/telemetry.csv", window())
    missing = viewer.get("/api/v1/assets/00000000-0000-0000-0000-000000000000/telemetry.csv", window())
    assert foreign.status_code == missing.status_code == 404
    assert foreign.json() == missing.json()
    _, own = read_csv(client_for(viewer_b), b_asset, **window())
    assert len(own) == 1 + 3  # B's own three readings, none of A's


def test_finance_may_not_read_telemetry(finance: User, support: User, fleet_a: Installed) -> None:
    feed(fleet_a, 2)
    assert client_for(finance).get(f"/api/v1/assets/{fleet_a.asset.pk}/telemetry.csv").status_code == 403
    _, rows = read_csv(client_for(support), fleet_a, **window())
    assert len(rows) == 3
