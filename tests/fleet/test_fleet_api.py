"""The fleet API: onboarding by operators, reads by role, tokens shown once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.test import Client

from fleet.models import AssetModel, Device, DeviceCredential, HourlyUsage
from portal.models import Customer, User
from tests.conftest import client_for
from tests.factories import HeartbeatFactory, SiteFactory
from tests.fleet.conftest import Installed


def test_operator_onboards_a_model_an_asset_and_a_device(operator: User, customer_a: Customer) -> None:
    client = client_for(operator)
    model = client.post(
        "/api/v1/asset-models/",
        {
            "code": "blower-9",
            "name": "Blower 9",
            "heartbeat_interval_seconds": 30,
            "metrics": [
                {"code": "run_hours", "label": "Run hours", "unit": "h", "kind": "counter"},
                {
                    "code": "rpm",
                    "label": "Speed",
                    "unit": "rpm",
                    "kind": "gauge",
                    "normal_min": "100",
                    "normal_max": "3000",
                },
            ],
        },
        content_type="application/json",
    )
    assert model.status_code == 201, model.content
    assert [m["code"] for m in model.json()["metrics"]] == ["rpm", "run_hours"]
    site = SiteFactory(customer=customer_a)
    asset = client.post(
        "/api/v1/assets/",
        {"site": str(site.pk), "model": model.json()["id"], "serial_number": "BL9-1", "name": "Hall blower"},
        content_type="application/json",
    )
    assert asset.status_code == 201, asset.content
    assert asset.json()["customer"] == str(customer_a.pk)
    assert asset.json()["status"] == "never_seen"
    device = client.post(
        "/api/v1/devices/",
        {"asset": asset.json()["id"], "serial_number": "GW-BL9-1"},
        content_type="application/json",
    )
    assert device.status_code == 201
    token = device.json()["token"]
    assert token.startswith("fpd_")
    assert device.json()["device"]["credential_prefixes"] == [token.split("_")[1]]
    # The token is never shown again.
    again = client.get(f"/api/v1/devices/{device.json()['device']['id']}/").content.decode()
    assert token not in again


def test_duplicate_metric_codes_and_serials_get_400(operator: User, fleet_a: Installed) -> None:
    client = client_for(operator)
    model = client.post(
        "/api/v1/asset-models/",
        {
            "code": "dup",
            "name": "Dup",
            "metrics": [{"code": "x", "label": "X"}, {"code": "x", "label": "X2"}],
        },
        content_type="application/json",
    )
    assert model.status_code == 400
    assert not AssetModel.objects.filter(code="dup").exists()
    asset = client.post(
        "/api/v1/assets/",
        {
            "site": str(fleet_a.asset.site_id),
            "model": str(fleet_a.asset.model_id),
            "serial_number": "A-0001",
            "name": "x",
        },
        content_type="application/json",
    )
    assert asset.status_code == 400
    assert "serial_number" in {e["field"] for e in asset.json()["errors"]}


def test_rotation_returns_a_new_token_and_revoke_ends_all(operator: User, fleet_a: Installed) -> None:
    client = client_for(operator)
    url = f"/api/v1/devices/{fleet_a.device.pk}"
    rotated = client.post(f"{url}/rotate-token/", {"overlap_seconds": 60}, content_type="application/json")
    assert rotated.status_code == 200
    assert rotated.json()["token"] != fleet_a.token
    assert len(rotated.json()["device"]["credential_prefixes"]) == 2
    revoked = client.post(f"{url}/revoke/")
    assert revoked.status_code == 200
    assert revoked.json()["credential_prefixes"] == []
    assert not DeviceCredential.objects.filter(device=fleet_a.device, revoked_at__isnull=True).exists()


def test_customers_cannot_rotate_or_revoke(admin_a: User, fleet_a: Installed) -> None:
    client = client_for(admin_a)
    assert client.post(f"/api/v1/devices/{fleet_a.device.pk}/rotate-token/").status_code == 403
    assert client.post(f"/api/v1/devices/{fleet_a.device.pk}/revoke/").status_code == 403
    assert client.get(f"/api/v1/devices/{fleet_a.device.pk}/").status_code == 200


def test_asset_list_filters_and_search(viewer_a: User, fleet_a: Installed) -> None:
    client = client_for(viewer_a)
    assert client.get("/api/v1/assets/").json()["count"] == 1
    assert client.get("/api/v1/assets/?status=never_seen").json()["count"] == 1
    assert client.get("/api/v1/assets/?status=online").json()["count"] == 0
    assert client.get(f"/api/v1/assets/?site={fleet_a.asset.site_id}").json()["count"] == 1
    assert client.get("/api/v1/assets/?model=comp-test").json()["count"] == 1
    assert client.get("/api/v1/assets/?q=A-0001").json()["count"] == 1
    assert client.get("/api/v1/assets/?q=nothing-like-it").json()["count"] == 0
    assert client.get("/api/v1/assets/?status=sleeping").status_code == 400
    assert client.get("/api/v1/assets/?site=not-a-uuid").status_code == 400


def test_heartbeats_are_cursor_paginated_newest_first(viewer_a: User, fleet_a: Installed) -> None:
    now = datetime.now(UTC)
    for seq in range(5):
        HeartbeatFactory(device=fleet_a.device, seq=seq, ts=now - timedelta(minutes=5 - seq))
    client = client_for(viewer_a)
    first = client.get(f"/api/v1/assets/{fleet_a.asset.pk}/heartbeats/?page_size=3").json()
    assert [h["seq"] for h in first["results"]] == [4, 3, 2]
    second = client.get(first["next"]).json()
    assert [h["seq"] for h in second["results"]] == [1, 0]
    assert second["next"] is None


def test_usage_by_hour_and_by_day_in_the_customers_zone(viewer_a: User, fleet_a: Installed) -> None:
    # Alpha is in Europe/Berlin (UTC+1 in November): 23:00 UTC is the next day there.
    day = datetime(2026, 11, 10, tzinfo=UTC)
    for hour, qty in ((21, "1.5"), (22, "2.25"), (23, "4")):
        HourlyUsage.objects.create(
            customer=fleet_a.asset.customer, asset=fleet_a.asset, metric="run_hours",
            hour=day.replace(hour=hour), quantity=Decimal(qty),
        )  # fmt: skip
    client = client_for(viewer_a)
    url = f"/api/v1/assets/{fleet_a.asset.pk}/usage/"
    hourly = client.get(
        url, {"metric": "run_hours", "from": "2026-11-10T00:00:00Z", "to": "2026-11-12T00:00:00Z"}
    )
    assert hourly.status_code == 200
    assert [p["quantity"] for p in hourly.json()["points"]] == ["1.500000", "2.250000", "4.000000"]
    assert hourly.json()["total"] == "7.750000"
    daily = client.get(
        url,
        {
            "metric": "run_hours",
            "from": "2026-11-10T00:00:00Z",
            "to": "2026-11-12T00:00:00Z",
            "resolution": "day",
        },
    ).json()
    assert daily["time_zone"] == "Europe/Berlin"
    assert [p["quantity"] for p in daily["points"]] == ["3.750000", "4.000000"]
    assert daily["points"][1]["period"].startswith("2026-11-11T00:00:00+01:00")


def test_usage_rejects_gauges_unknown_metrics_and_bad_ranges(viewer_a: User, fleet_a: Installed) -> None:
    client = client_for(viewer_a)
    url = f"/api/v1/assets/{fleet_a.asset.pk}/usage/"
    assert client.get(url, {"metric": "temp_c"}).status_code == 400
    assert client.get(url, {"metric": "nope"}).status_code == 400
    assert client.get(url).status_code == 400
    assert client.get(url, {"metric": "run_hours", "from": "yesterday"}).status_code == 400
    bad_range = {"metric": "run_hours", "from": "2026-11-12T00:00:00Z", "to": "2026-11-10T00:00:00Z"}
    assert client.get(url, bad_range).status_code == 400
    assert client.get(url, {"metric": "run_hours", "resolution": "week"}).status_code == 400


def test_scripts_use_the_fleet_api_with_a_token(viewer_a: User, fleet_a: Installed) -> None:
    from portal.tokens import api_token_issue

    token = api_token_issue(user=viewer_a)
    response = Client().get("/api/v1/assets/", HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200
    assert response.json()["results"][0]["serial_number"] == "A-0001"


def test_finance_reads_the_catalogue_but_not_devices(finance: User, fleet_a: Installed) -> None:
    client = client_for(finance)
    assert client.get("/api/v1/asset-models/").status_code == 200
    assert client.get("/api/v1/devices/").status_code == 403
    assert Device.objects.count() == 1


def test_operator_renames_moves_and_decommissions(
    operator: User, fleet_a: Installed, fleet_b: Installed
) -> None:
    from fleet.ingest import worker
    from fleet.models import AssetStatusChange, IngestInbox

    client = client_for(operator)
    url = f"/api/v1/assets/{fleet_a.asset.pk}/"
    other_site = SiteFactory(customer=fleet_a.asset.customer, name="Annex")
    moved = client.patch(url, {"name": "Line 1", "site": str(other_site.pk)}, content_type="application/json")
    assert moved.status_code == 200
    assert (moved.json()["name"], moved.json()["site_name"]) == ("Line 1", "Annex")
    # Another customer's site is unknown here, like a missing one.
    foreign = client.patch(url, {"site": str(fleet_b.asset.site_id)}, content_type="application/json")
    assert foreign.status_code == 400
    assert foreign.json()["errors"] == [{"field": "site", "message": "Unknown site."}]
    done = client.patch(url, {"decommissioned_at": "2026-11-20T12:00:00Z"}, content_type="application/json")
    assert done.json()["status"] == "decommissioned"
    assert AssetStatusChange.objects.filter(asset=fleet_a.asset, status="decommissioned").exists()
    # Heartbeats still arriving are stored but do not bring it back.
    item = {"seq": 1, "ts": datetime.now(UTC).isoformat(), "status": "ok", "fault_code": "", "metrics": {}}
    IngestInbox.objects.create(device_id=fleet_a.device.pk, count=1, items=[item])
    worker.drain()
    fleet_a.asset.refresh_from_db()
    assert fleet_a.asset.status == "decommissioned"


def test_customers_cannot_change_assets_or_sites(admin_a: User, fleet_a: Installed) -> None:
    client = client_for(admin_a)
    assert (
        client.patch(
            f"/api/v1/assets/{fleet_a.asset.pk}/", {"name": "x"}, content_type="application/json"
        ).status_code
        == 403
    )
    assert (
        client.patch(
            f"/api/v1/sites/{fleet_a.asset.site_id}/", {"name": "x"}, content_type="application/json"
        ).status_code
        == 403
    )


def test_operator_renames_a_site(operator: User, fleet_a: Installed) -> None:
    response = client_for(operator).patch(
        f"/api/v1/sites/{fleet_a.asset.site_id}/", {"name": "Main plant"}, content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Main plant"


def test_asset_models_keep_their_description(operator: User) -> None:
    body = {"code": "d1", "name": "D1", "description": "Two-stage", "metrics": [{"code": "x", "label": "X"}]}
    response = client_for(operator).post("/api/v1/asset-models/", body, content_type="application/json")
    assert response.status_code == 201
    assert response.json()["description"] == "Two-stage"


def test_usage_ranges_are_checked_with_one_end_given(viewer_a: User, fleet_a: Installed) -> None:
    url = f"/api/v1/assets/{fleet_a.asset.pk}/usage/"
    response = client_for(viewer_a).get(url, {"metric": "run_hours", "from": "2001-01-01T00:00:00Z"})
    assert response.status_code == 400
    assert "from" in {e["field"] for e in response.json()["errors"]}
    response = client_for(viewer_a).get(url, {"metric": "run_hours", "from": "garbage"})
    assert [e["field"] for e in response.json()["errors"]] == ["from"]


def test_only_usable_token_prefixes_are_listed(operator: User, fleet_a: Installed) -> None:
    client = client_for(operator)
    rotated = client.post(
        f"/api/v1/devices/{fleet_a.device.pk}/rotate-token/",
        {"overlap_seconds": 0},
        content_type="application/json",
    ).json()
    assert rotated["device"]["credential_prefixes"] == [rotated["token"].split("_")[1]]


def test_finance_finds_assets_for_their_usage(finance: User, fleet_a: Installed) -> None:
    client = client_for(finance)
    assets = client.get("/api/v1/assets/").json()["results"]
    assert [a["id"] for a in assets] == [str(fleet_a.asset.pk)]
    assert client.get(f"/api/v1/assets/{fleet_a.asset.pk}/usage/", {"metric": "run_hours"}).status_code == 200
    assert client.get(f"/api/v1/assets/{fleet_a.asset.pk}/heartbeats/").status_code == 403


def test_operator_installs_a_device_from_the_asset_page_and_sees_the_token_once(
    operator: User, fleet_a: Installed
) -> None:
    import re

    from fleet.models import DeviceCredential

    client = client_for(operator)
    page = client.post(
        f"/fleet/assets/{fleet_a.asset.pk}/devices/", {"serial_number": "GW-SWAP-1", "firmware": "3.0"}
    )
    assert page.status_code == 200
    assert page["Cache-Control"] == "no-store"
    token = re.search(r'value="(fpd_[^"]+)"', page.content.decode())
    assert token is not None
    new_device = Device.objects.get(serial_number="GW-SWAP-1")
    assert new_device.is_active
    assert DeviceCredential.objects.get(device=new_device).token_hash != token.group(1)
    # The asset page lists prefixes, never the token.
    assert token.group(1) not in client.get(f"/fleet/assets/{fleet_a.asset.pk}/").content.decode()
    body = {"seq": 1, "ts": datetime.now(UTC).isoformat(), "status": "ok", "metrics": {}}
    accepted = Client().post(
        "/api/v1/ingest/heartbeats",
        body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Device {token.group(1)}",
    )
    assert accepted.status_code == 202

    rotated = client.post(f"/fleet/devices/{new_device.pk}/rotate/", {"overlap_seconds": "0"})
    assert "fpd_" in rotated.content.decode()
    revoked = client.post(f"/fleet/devices/{new_device.pk}/revoke/")
    assert revoked.status_code == 302
    assert not DeviceCredential.objects.filter(device=new_device, revoked_at__isnull=True).exists()


def test_customers_cannot_install_rotate_or_revoke_from_pages(admin_a: User, fleet_a: Installed) -> None:
    client = client_for(admin_a)
    assert (
        client.post(f"/fleet/assets/{fleet_a.asset.pk}/devices/", {"serial_number": "X"}).status_code == 403
    )
    assert client.post(f"/fleet/devices/{fleet_a.device.pk}/rotate/").status_code == 403
    assert client.post(f"/fleet/devices/{fleet_a.device.pk}/revoke/").status_code == 403
    assert "New token" not in client.get(f"/fleet/assets/{fleet_a.asset.pk}/").content.decode()
