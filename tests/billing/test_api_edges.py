"""Extreme and missing inputs to the billing API answer a 4xx naming the field and change nothing."""

from __future__ import annotations

import pytest

from billing.models import Contract, InvoiceRun, Plan
from portal.models import AuditEntry, User
from tests.conftest import client_for

JSON = "application/json"


def _fields(response: object) -> list[str | None]:
    return [e["field"] for e in response.json()["errors"]]


@pytest.mark.parametrize("period", ["0000-01", "0001-01", "9999-12", "0000-12"])
def test_a_month_out_of_range_is_a_400_on_period(
    viewer_a: User, finance: User, contract_a: Contract, period: str
) -> None:
    usage = client_for(viewer_a).get(f"/api/v1/contracts/{contract_a.pk}/usage/", {"period": period})
    run = client_for(finance).post("/api/v1/invoice-runs/", {"period": period}, content_type=JSON)
    export = client_for(finance).get("/api/v1/invoices/export.csv", {"period": period})
    invoices = client_for(finance).get("/api/v1/invoices/", {"period": period})

    for response in (usage, run, export, invoices):
        assert response.status_code == 400, response.content
        assert _fields(response) == ["period"]
    assert not InvoiceRun.objects.exists()


def test_a_plan_without_currency_is_a_400_and_creates_nothing(finance: User, compressor: object) -> None:
    audited = AuditEntry.objects.count()

    response = client_for(finance).post(
        "/api/v1/plans/",
        {"code": "no-currency", "name": "No currency", "period_fee": "10.00"},
        content_type=JSON,
    )

    assert response.status_code == 400, response.content
    assert _fields(response) == ["currency"]
    assert not Plan.objects.filter(code="no-currency").exists()
    assert AuditEntry.objects.count() == audited


def test_a_plan_may_be_created_inactive(finance: User, compressor: object) -> None:
    body = {"code": "later", "name": "Later", "currency": "EUR", "period_fee": "10.00", "is_active": False}

    response = client_for(finance).post("/api/v1/plans/", body, content_type=JSON)

    assert response.status_code == 201, response.content
    assert response.json()["is_active"] is False


@pytest.mark.parametrize("period", ["0000-01", "9999-12"])
def test_the_pages_refuse_a_month_out_of_range_too(
    viewer_a: User, finance: User, contract_a: Contract, period: str
) -> None:
    usage_page = client_for(viewer_a).get(f"/billing/contracts/{contract_a.pk}/", {"period": period})
    run_form = client_for(finance).post("/billing/runs/", {"period": period}, follow=True)

    assert usage_page.status_code == 200  # the current month instead
    assert run_form.status_code == 200
    assert "period must be a month from 1970-01 to 2999-12" in run_form.content.decode()
    assert not InvoiceRun.objects.exists()
