"""Customer-caused stops: who marks them, that it is audited, that the customer reads them."""

from __future__ import annotations

from datetime import UTC, datetime

from fleet.models import StatusExclusion
from portal.models import AuditEntry, User
from tests.conftest import client_for
from tests.fleet_fixtures import Installed

START, END = "2026-10-20T00:00:00Z", "2026-10-20T04:00:00Z"


def test_support_marks_a_stop_with_a_reason_and_the_customer_reads_it(
    support: User, viewer_a: User, fleet_a: Installed
) -> None:
    response = client_for(support).post(
        "/api/v1/status-exclusions/",
        {"asset": str(fleet_a.asset.pk), "starts_at": START, "ends_at": END, "reason": "Plant holiday"},
        content_type="application/json",
    )

    assert response.status_code == 201, response.json()
    row = StatusExclusion.objects.get()
    assert (row.starts_at, row.ends_at) == (
        datetime(2026, 10, 20, 0, tzinfo=UTC),
        datetime(2026, 10, 20, 4, tzinfo=UTC),
    )
    assert (row.reason, row.created_by) == ("Plant holiday", support)
    assert AuditEntry.objects.filter(
        action="status_exclusion.marked", customer=fleet_a.asset.customer
    ).exists()
    listed = client_for(viewer_a).get(f"/api/v1/status-exclusions/?asset={fleet_a.asset.pk}").json()
    assert [r["reason"] for r in listed["results"]] == ["Plant holiday"]
    page = client_for(viewer_a).get(f"/fleet/assets/{fleet_a.asset.pk}/").content.decode()
    assert "Plant holiday" in page
    assert "Mark as caused by the customer" not in page  # the customer reads, never marks


def test_a_reason_is_required_and_the_end_follows_the_start(support: User, fleet_a: Installed) -> None:
    client = client_for(support)
    body = {"asset": str(fleet_a.asset.pk), "starts_at": END, "ends_at": START, "reason": " "}

    response = client.post("/api/v1/status-exclusions/", body, content_type="application/json")

    assert response.status_code == 400
    assert {e["field"] for e in response.json()["errors"]} <= {"reason", "ends_at"}
    assert not StatusExclusion.objects.exists()


def test_customers_may_not_mark_or_remove(admin_a: User, support: User, fleet_a: Installed) -> None:
    body = {"asset": str(fleet_a.asset.pk), "starts_at": START, "ends_at": END, "reason": "We did it"}
    assert (
        client_for(admin_a)
        .post("/api/v1/status-exclusions/", body, content_type="application/json")
        .status_code
        == 403
    )
    client_for(support).post("/api/v1/status-exclusions/", body, content_type="application/json")
    row = StatusExclusion.objects.get()
    assert client_for(admin_a).delete(f"/api/v1/status-exclusions/{row.pk}/").status_code == 403
    assert client_for(admin_a).post(f"/fleet/exclusions/{row.pk}/remove/").status_code == 403
    assert StatusExclusion.objects.exists()


def test_marking_another_customers_asset_is_an_unknown_asset(
    operator: User, admin_b: User, fleet_a: Installed
) -> None:
    body = {"asset": str(fleet_a.asset.pk), "starts_at": START, "ends_at": END, "reason": "x"}
    # admin_b may not mark at all; an operator may, and the asset must be one the operator sees.
    assert (
        client_for(admin_b)
        .post("/api/v1/status-exclusions/", body, content_type="application/json")
        .status_code
        == 403
    )
    response = client_for(operator).post(
        "/api/v1/status-exclusions/", {**body, "asset": "00000000-0000-0000-0000-000000000000"},
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "asset", "message": "Unknown asset."}]


def test_the_page_form_marks_in_the_users_zone_and_removal_is_audited(
    support: User, fleet_a: Installed
) -> None:
    client = client_for(support)
    url = f"/fleet/assets/{fleet_a.asset.pk}/exclusions/"

    response = client.post(
        url, {"starts_at": "2026-10-20T02:00", "ends_at": "2026-10-20T06:00", "reason": "Holiday"}
    )

    assert response.status_code == 302
    row = StatusExclusion.objects.get()
    assert row.ends_at - row.starts_at == datetime(2026, 1, 1, 4, tzinfo=UTC) - datetime(
        2026, 1, 1, 0, tzinfo=UTC
    )
    assert client.post(f"/fleet/exclusions/{row.pk}/remove/").status_code == 302
    assert not StatusExclusion.objects.exists()
    removed = AuditEntry.objects.get(action="status_exclusion.removed")
    assert removed.data["reason"] == "Holiday"
