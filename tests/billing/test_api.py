"""The billing API as finance, customer admins and viewers use it."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import time_machine
from pypdf import PdfReader

from billing import services
from billing.invoicing import bill_period
from billing.models import Contract, Invoice, InvoiceRun, InvoiceStatus, Plan
from billing.runs import invoice_run_execute
from portal.models import User
from tests.billing_fixtures import usage
from tests.conftest import client_for
from tests.fleet_fixtures import Installed

AFTER_OCTOBER = datetime(2026, 11, 5, tzinfo=UTC)
JSON = "application/json"


def body(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else bytes(response.content)


@pytest.fixture
def finalized(contract_a: Contract, contract_b: Contract, fleet_a: Installed, fleet_b: Installed) -> Invoice:
    usage(fleet_a.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "10")
    usage(fleet_a.asset, datetime(2026, 10, 4, 10, tzinfo=UTC), "2.5")
    usage(fleet_b.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "99")
    bill_period("2026-10", now=AFTER_OCTOBER)
    for invoice in Invoice.objects.all():
        services.invoice_finalize(actor=None, invoice=invoice)
    return Invoice.objects.get(contract=contract_a)


def test_finance_creates_a_plan_with_tiers_and_gets_decimal_strings(
    finance: User, compressor: object
) -> None:
    response = client_for(finance).post(
        "/api/v1/plans/",
        {
            "code": "volume-energy", "name": "Volume energy", "currency": "EUR", "period_fee": "250.00",
            "minimum_commitment": "400.00",
            "components": [{"metric": "energy_kwh", "label": "Energy", "unit": "kWh",
                            "charge_model": "volume",
                            "tiers": [{"up_to": "1000", "unit_price": "0.20"},
                                      {"up_to": None, "unit_price": "0.15", "flat_fee": "10"}]}],
        },
        content_type=JSON,
    )  # fmt: skip
    assert response.status_code == 201, response.json()
    plan = response.json()
    assert plan["period_fee"] == "250.00"
    assert plan["components"][0]["tiers"][1] == {"up_to": None, "unit_price": "0.150000", "flat_fee": "10.00"}
    assert Plan.objects.get(code="volume-energy").pricing().components[0].tiers[0].up_to == Decimal("1000")


@pytest.mark.parametrize(
    ("component", "field"),
    [
        ({"metric": "energy_kwh", "charge_model": "graduated", "tiers": []}, "tiers"),
        ({"metric": "energy_kwh", "charge_model": "graduated",
          "tiers": [{"up_to": "100", "unit_price": "1"}]}, "tiers"),  # last tier must be open
        ({"metric": "energy_kwh", "charge_model": "volume",
          "tiers": [{"up_to": "100", "unit_price": "1"}, {"up_to": "50", "unit_price": "1"},
                    {"up_to": None, "unit_price": "1"}]}, "tiers"),  # bounds must rise
        ({"metric": "energy_kwh", "charge_model": "package"}, "package_size"),
        ({"metric": "energy_kwh", "charge_model": "per_unit", "unit_price": "-1"}, "unit_price"),
        ({"metric": "energy_kwh", "charge_model": "per_unit", "unit_price": "NaN"}, "unit_price"),
        ({"metric": "energy_kwh", "charge_model": "bogus"}, "charge_model"),
    ],
)  # fmt: skip
def test_bad_price_components_are_refused_with_the_field_named(
    finance: User, compressor: object, component: dict[str, Any], field: str
) -> None:
    response = client_for(finance).post(
        "/api/v1/plans/",
        {"code": "bad", "name": "Bad", "currency": "EUR", "period_fee": "1", "components": [component]},
        content_type=JSON,
    )
    assert response.status_code == 400
    assert field in str(response.json())
    assert not Plan.objects.filter(code="bad").exists()


def test_a_plan_may_only_price_counter_metrics(finance: User, compressor: object) -> None:
    response = client_for(finance).post(
        "/api/v1/plans/",
        {"code": "gauge", "name": "G", "currency": "EUR", "period_fee": "1",
         "components": [{"metric": "temp_c", "charge_model": "per_unit", "unit_price": "1"}]},
        content_type=JSON,
    )  # fmt: skip
    assert response.status_code == 400
    assert "counter" in str(response.json())


def test_finance_creates_a_contract_and_the_customer_reads_its_sla_terms(
    finance: User, viewer_a: User, viewer_b: User, plan: Plan, fleet_a: Installed, fleet_b: Installed
) -> None:
    response = client_for(finance).post(
        "/api/v1/contracts/",
        {
            "customer": str(fleet_a.asset.customer_id), "plan": str(plan.pk), "start_date": "2026-10-17",
            "assets": [str(fleet_a.asset.pk)], "uptime_target": "99.5",
            "first_response_minutes": {"P1": 30}, "resolution_minutes": {"P1": 240},
            "service_credits": [{"below": "99.5", "credit_percent": "5"}],
        },
        content_type=JSON,
    )  # fmt: skip
    assert response.status_code == 201, response.json()
    contract = response.json()
    assert contract["assets"][0]["serial_number"] == "A-0001"
    assert contract["assets"][0]["covered_from"] == "2026-10-16T22:00:00Z"  # midnight in Berlin

    mine = client_for(viewer_a).get(f"/api/v1/contracts/{contract['id']}/").json()
    assert mine["first_response_minutes"] == {"P1": 30}
    assert mine["uptime_target"] == "99.500"
    assert client_for(viewer_b).get(f"/api/v1/contracts/{contract['id']}/").status_code == 404

    # Another customer's asset is unknown in this contract, by the same words as a missing one.
    refused = client_for(finance).post(
        f"/api/v1/contracts/{contract['id']}/assets/", {"asset": str(fleet_b.asset.pk)}, content_type=JSON
    )
    assert refused.status_code == 400
    assert refused.json()["errors"] == [{"field": "asset", "message": "Unknown asset."}]


def test_an_asset_cannot_be_under_two_contracts_at_once(
    finance: User, contract_a: Contract, plan: Plan, fleet_a: Installed
) -> None:
    response = client_for(finance).post(
        "/api/v1/contracts/",
        {"customer": str(fleet_a.asset.customer_id), "plan": str(plan.pk), "start_date": "2026-11-01",
         "assets": [str(fleet_a.asset.pk)]},
        content_type=JSON,
    )  # fmt: skip
    assert response.status_code == 400
    assert "already covered" in str(response.json())
    assert Contract.objects.count() == 1


@time_machine.travel(datetime(2026, 10, 16, 22, tzinfo=UTC), tick=False)  # half of October in Berlin
def test_usage_to_date_with_its_projection(
    viewer_a: User, support: User, contract_a: Contract, fleet_a: Installed
) -> None:
    usage(fleet_a.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "100")
    usage(fleet_a.asset, datetime(2026, 10, 5, 10, tzinfo=UTC), "600", metric="energy_kwh")

    response = client_for(viewer_a).get(f"/api/v1/contracts/{contract_a.pk}/usage/")

    assert response.status_code == 200
    data = response.json()
    assert data["period"] == "2026-10"
    # 384 of October's 745 hours have passed.
    assert data["elapsed"] == "0.5154"
    run_hours, energy = data["meters"]
    assert (run_hours["quantity"], run_hours["amount"]) == ("100.000000", "50.00")
    # Quantities as they would be billed, at the unit's precision (docs/billing.md).
    assert run_hours["projected_quantity"] == "194.010000"  # 100 × 745 / 384 = 194.0104 → 194.01 h
    assert run_hours["projected_amount"] == "97.01"  # 194.01 × 0.50 = 97.005
    assert (energy["amount"], energy["projected_quantity"]) == ("120.00", "1164.100000")  # 1,164.0625 kWh
    assert energy["projected_amount"] == "216.41"  # 1,000 × 0.20 + 164.1 × 0.10
    assert data["subtotal_so_far"] == "270.00"
    assert data["projected_subtotal"] == "413.42"  # fee 100 + 97.01 + 216.41
    assert client_for(support).get(f"/api/v1/contracts/{contract_a.pk}/usage/").status_code == 403


def test_a_period_that_is_not_a_month_is_a_clear_400(
    viewer_a: User, finance: User, contract_a: Contract
) -> None:
    response = client_for(viewer_a).get(f"/api/v1/contracts/{contract_a.pk}/usage/?period=2026-13")
    assert response.status_code == 400
    assert "YYYY-MM" in str(response.json())
    response = client_for(finance).post("/api/v1/invoice-runs/", {"period": "October"}, content_type=JSON)
    assert response.status_code == 400
    assert not InvoiceRun.objects.exists()


def test_customer_admins_see_finalized_invoices_viewers_none(
    admin_a: User, viewer_a: User, contract_a: Contract, fleet_a: Installed
) -> None:
    bill_period("2026-10", now=AFTER_OCTOBER)
    draft = Invoice.objects.get()
    assert client_for(admin_a).get("/api/v1/invoices/").json()["count"] == 0  # drafts are finance's
    assert client_for(admin_a).get(f"/api/v1/invoices/{draft.pk}/").status_code == 404
    services.invoice_finalize(actor=None, invoice=draft)
    listed = client_for(admin_a).get("/api/v1/invoices/").json()
    assert [i["number"] for i in listed["results"]] == [Invoice.objects.get().number]
    assert client_for(viewer_a).get("/api/v1/invoices/").status_code == 403


def test_finance_works_an_invoice_through_its_states(
    finance: User, admin_a: User, contract_a: Contract
) -> None:
    bill_period("2026-10", now=AFTER_OCTOBER)
    invoice = Invoice.objects.get()
    client = client_for(finance)
    assert client_for(admin_a).post(f"/api/v1/invoices/{invoice.pk}/finalize/").status_code == 403
    finalized = client.post(f"/api/v1/invoices/{invoice.pk}/finalize/").json()
    assert finalized["status"] == "finalized"
    assert finalized["number"].startswith("INV-")
    again = client.post(f"/api/v1/invoices/{invoice.pk}/finalize/")
    assert again.status_code == 400
    assert "draft" in str(again.json())
    assert client_for(admin_a).post(f"/api/v1/invoices/{invoice.pk}/mark-paid/").status_code == 403

    note = client.post(
        f"/api/v1/invoices/{invoice.pk}/credit-notes/",
        {"amount": "20.00", "reason": "Goodwill"},
        content_type=JSON,
    )
    assert note.status_code == 201
    assert note.json()["total"] == "23.80"
    assert (
        client_for(admin_a)
        .post(
            f"/api/v1/invoices/{invoice.pk}/credit-notes/", {"amount": "1", "reason": "x"}, content_type=JSON
        )
        .status_code
        == 403
    )
    assert [
        n["number"] for n in client_for(admin_a).get(f"/api/v1/invoices/{invoice.pk}/credit-notes/").json()
    ] == [note.json()["number"]]
    paid = client.post(f"/api/v1/invoices/{invoice.pk}/mark-paid/", {}, content_type=JSON).json()
    assert paid["status"] == InvoiceStatus.PAID
    void = client.post(f"/api/v1/invoices/{invoice.pk}/void/", {"reason": "late"}, content_type=JSON)
    assert void.status_code == 400


def test_the_pdf_is_a_real_invoice(admin_a: User, admin_b: User, finalized: Invoice) -> None:
    response = client_for(admin_a).get(f"/api/v1/invoices/{finalized.pk}/pdf/")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert f'filename="{finalized.number}.pdf"' in response["Content-Disposition"]
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(body(response))).pages)
    assert str(finalized.number) in text
    assert "Alpha Dairy" in text
    assert "Run hours" in text
    assert "6.25" in text  # 12.5 h × 0.50
    assert str(finalized.total) in text
    assert "Bravo" not in text
    assert client_for(admin_b).get(f"/api/v1/invoices/{finalized.pk}/pdf/").status_code == 404


def test_the_csv_export_has_a_row_per_line_and_only_what_the_user_may_see(
    finance: User, admin_a: User, finalized: Invoice
) -> None:
    every = list(
        csv.DictReader(
            io.StringIO(body(client_for(finance).get("/api/v1/invoices/export.csv?period=2026-10")).decode())
        )
    )
    assert len(every) == 6  # two invoices × (fee, run hours, energy)
    assert {row["customer"] for row in every} == {"Alpha Dairy", "Bravo Breweries"}
    mine = list(
        csv.DictReader(io.StringIO(body(client_for(admin_a).get("/api/v1/invoices/export.csv")).decode()))
    )
    assert {row["invoice"] for row in mine} == {finalized.number}
    assert [row["amount"] for row in mine] == ["100.00", "6.25", "0.00"]


def test_each_usage_line_shows_the_hours_behind_it(admin_a: User, finalized: Invoice) -> None:
    line = finalized.lines.get(metric="run_hours")
    client = client_for(admin_a)

    data = client.get(f"/api/v1/invoices/{finalized.pk}/lines/{line.pk}/usage/").json()
    assert [(h["hour"], h["quantity"]) for h in data["hours"]] == [
        ("2026-10-03T12:00:00+02:00", "10.000000"),
        ("2026-10-04T12:00:00+02:00", "2.500000"),
    ]
    rows = list(
        csv.DictReader(
            io.StringIO(
                body(client.get(f"/api/v1/invoices/{finalized.pk}/lines/{line.pk}/usage.csv")).decode()
            )
        )
    )
    assert sum(Decimal(r["quantity"]) for r in rows) == line.quantity
    fee = finalized.lines.get(kind="period_fee")
    assert client.get(f"/api/v1/invoices/{finalized.pk}/lines/{fee.pk}/usage/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_an_invoice_run_through_the_api_and_a_real_worker(
    finance: User, contract_a: Contract, fleet_a: Installed, live_worker: object
) -> None:
    import time

    response = client_for(finance).post("/api/v1/invoice-runs/", {"period": "2026-10"}, content_type=JSON)
    assert response.status_code == 202
    run_id = response.json()["id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run = client_for(finance).get(f"/api/v1/invoice-runs/{run_id}/").json()
        if run["status"] in ("done", "failed"):
            break
        time.sleep(0.2)
    assert (run["status"], run["processed"], run["total"], run["created_count"], run["percent"]) == (
        "done", 1, 1, 1, 100,
    )  # fmt: skip
    assert Invoice.objects.get().run_id is not None
    # And again: nothing new.
    invoice_run_execute(str(services_run(finance).pk))
    assert Invoice.objects.count() == 1


def services_run(finance: User) -> InvoiceRun:
    return InvoiceRun.objects.create(period="2026-10", started_by=finance)


def test_a_plan_can_be_created_retired_and_keeps_its_currency_once_used(
    finance: User, contract_a: Contract
) -> None:
    client = client_for(finance)
    response = client.post(
        "/api/v1/plans/",
        {"code": "old", "name": "Old", "currency": "EUR", "period_fee": "1", "is_active": False},
        content_type=JSON,
    )
    assert response.status_code == 201
    assert response.json()["is_active"] is False
    changed = client.patch(f"/api/v1/plans/{contract_a.plan_id}/", {"currency": "USD"}, content_type=JSON)
    assert changed.status_code == 400
    assert "currency" in {e["field"] for e in changed.json()["errors"]}


def test_a_discarded_draft_is_never_shown_to_the_customer(admin_a: User, contract_a: Contract) -> None:
    bill_period("2026-10", now=AFTER_OCTOBER)
    services.invoice_void(actor=None, invoice=Invoice.objects.get(), reason="Discarded draft")
    assert client_for(admin_a).get("/api/v1/invoices/").json()["count"] == 0
