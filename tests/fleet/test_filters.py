"""The alarm and asset filters: one FilterSet (fleet.selectors) for the API list and the page."""

from __future__ import annotations

from django.utils import timezone

from fleet.models import Alarm
from portal.models import User
from tests.conftest import client_for
from tests.fleet_fixtures import Installed


def _alarm(installed: Installed, severity: str, state: str = "raised") -> Alarm:
    asset = installed.asset
    return Alarm.objects.create(
        customer=asset.customer, asset=asset, kind="threshold", key=f"k-{severity}-{state}",
        severity=severity, state=state, message=f"{severity} {state}", raised_at=timezone.now(),
    )  # fmt: skip


def test_the_api_and_the_page_filter_alarms_alike(support: User, fleet_a: Installed) -> None:
    _alarm(fleet_a, "critical")
    _alarm(fleet_a, "warning")
    _alarm(fleet_a, "critical", state="cleared")
    client = client_for(support)

    api = client.get("/api/v1/alarms/", {"state": "active", "severity": "critical"}).json()
    page = client.get("/alarms/", {"state": "active", "severity": "critical"}).content.decode()

    assert [a["message"] for a in api["results"]] == ["critical raised"]
    assert "critical raised" in page
    assert "warning raised" not in page
    assert "critical cleared" not in page


def test_a_bad_filter_is_a_400_in_the_api_and_a_message_on_the_page(
    support: User, fleet_a: Installed
) -> None:
    _alarm(fleet_a, "warning")
    client = client_for(support)

    api = client.get("/api/v1/alarms/", {"severity": "apocalyptic"})
    page = client.get("/alarms/", {"severity": "apocalyptic", "customer": "42"})

    assert api.status_code == 400
    assert [e["field"] for e in api.json()["errors"]] == ["severity"]
    assert page.status_code == 200
    text = page.content.decode()
    assert "apocalyptic is not one of the available choices" in text
    assert "Enter a valid UUID." in text
    assert "warning raised" in text  # the bad filters are left out; the default (active) still applies


def test_the_asset_filters_refuse_a_bad_status_alike(viewer_a: User, fleet_a: Installed) -> None:
    client = client_for(viewer_a)

    api = client.get("/api/v1/assets/", {"status": "exploded"})
    page = client.get("/fleet/", {"status": "exploded"})

    assert api.status_code == 400
    assert [e["field"] for e in api.json()["errors"]] == ["status"]
    assert page.status_code == 200
    assert "exploded is not one of the available choices" in page.content.decode()
    assert fleet_a.asset.name in page.content.decode()


def test_the_schema_documents_the_filtersets_on_lists_only(viewer_a: User) -> None:
    schema = client_for(viewer_a).get("/api/v1/schema/", {"format": "json"}).json()

    def names(path: str) -> set[str]:
        return {p["name"] for p in schema["paths"][path]["get"].get("parameters", [])}

    assert {"state", "severity", "asset", "customer"} <= names("/api/v1/alarms/")
    assert {"site", "status", "model", "q"} <= names("/api/v1/assets/")
    assert {"period", "status", "customer", "contract"} <= names("/api/v1/invoices/")
    assert {"status", "priority", "category", "sla_state", "customer", "assignee", "q"} <= names(
        "/api/v1/tickets/"
    )
    assert "status" not in names("/api/v1/assets/{id}/heartbeats/")


def test_another_customers_id_in_a_filter_finds_nothing(
    viewer_a: User, fleet_a: Installed, fleet_b: Installed
) -> None:
    _alarm(fleet_b, "critical")
    client = client_for(viewer_a)
    foreign = {"customer": str(fleet_b.asset.customer_id)}

    api = client.get("/api/v1/alarms/", foreign)
    page = client.get("/alarms/", {**foreign, "state": "active"})

    assert (api.status_code, api.json()["count"]) == (200, 0)
    assert "critical raised" not in page.content.decode()
