"""Billing pages: who sees what, empty states, and finance's actions from the invoice page."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from billing import services
from billing.invoicing import bill_period
from billing.models import Contract, CreditNote, Invoice, InvoiceRun, InvoiceStatus
from portal.models import User
from portal.roles import Role
from tests.billing_fixtures import usage
from tests.conftest import client_for
from tests.fleet_fixtures import Installed

AFTER_OCTOBER = datetime(2026, 11, 5, tzinfo=UTC)


@pytest.fixture
def draft(contract_a: Contract, contract_b: Contract, fleet_a: Installed) -> Invoice:
    usage(fleet_a.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "10")
    bill_period("2026-10", now=AFTER_OCTOBER)
    return Invoice.objects.get(contract=contract_a)


PAGES = {
    "/billing/contracts/": {Role.CUSTOMER_VIEWER: 200, Role.CUSTOMER_ADMIN: 200, Role.SUPPORT: 200,
                            Role.FINANCE: 200, Role.OPERATOR: 200},
    "/billing/invoices/": {Role.CUSTOMER_VIEWER: 403, Role.CUSTOMER_ADMIN: 200, Role.SUPPORT: 403,
                           Role.FINANCE: 200, Role.OPERATOR: 200},
    "/billing/runs/": {Role.CUSTOMER_VIEWER: 403, Role.CUSTOMER_ADMIN: 403, Role.SUPPORT: 403,
                       Role.FINANCE: 200, Role.OPERATOR: 200},
    "/billing/plans/": {Role.CUSTOMER_VIEWER: 403, Role.CUSTOMER_ADMIN: 403, Role.SUPPORT: 403,
                        Role.FINANCE: 200, Role.OPERATOR: 200},
    "/billing/revenue/": {Role.CUSTOMER_VIEWER: 403, Role.CUSTOMER_ADMIN: 403, Role.SUPPORT: 403,
                          Role.FINANCE: 200, Role.OPERATOR: 200},
}  # fmt: skip


@pytest.mark.parametrize("url", list(PAGES))
def test_pages_by_role(cast: dict[str, User], draft: Invoice, url: str) -> None:
    for role, expected in PAGES[url].items():
        assert client_for(cast[role]).get(url).status_code == expected, (url, role)


def test_the_contract_page_shows_terms_usage_and_projection(viewer_a: User, contract_a: Contract) -> None:
    page = client_for(viewer_a).get(f"/billing/contracts/{contract_a.pk}/").content.decode()
    assert contract_a.number in page
    assert "Service levels" in page
    assert 'data-testid="usage"' in page
    assert "projected for the month" in page
    assert "contract-usage.js" in page
    # Viewers see usage, not invoices.
    assert "<h2>Invoices</h2>" not in page


def test_the_contract_page_of_another_month_shows_no_projection(viewer_a: User, contract_a: Contract) -> None:
    page = client_for(viewer_a).get(f"/billing/contracts/{contract_a.pk}/?period=2026-01").content.decode()
    assert "Usage 2026-01" in page
    assert "projected for the month" not in page
    bad = client_for(viewer_a).get(f"/billing/contracts/{contract_a.pk}/?period=nonsense")
    assert bad.status_code == 200  # falls back to this month


def test_empty_states_say_what_to_do(admin_a: User, finance: User) -> None:
    assert (
        "Invoices appear here once your provider issues them"
        in client_for(admin_a).get("/billing/invoices/").content.decode()
    )
    assert "Start an" in client_for(finance).get("/billing/invoices/").content.decode()
    assert "No contract yet" in client_for(admin_a).get("/billing/contracts/").content.decode()
    assert "No finalized invoice yet" in client_for(finance).get("/billing/revenue/").content.decode()


def test_customers_never_see_drafts_on_pages(admin_a: User, draft: Invoice) -> None:
    client = client_for(admin_a)
    assert client.get(f"/billing/invoices/{draft.pk}/").status_code == 404
    services.invoice_finalize(actor=None, invoice=draft)
    page = client.get(f"/billing/invoices/{draft.pk}/").content.decode()
    assert "Usage behind this line" in page
    assert 'data-testid="finalize"' not in page
    assert "Issue a credit note" not in page


def test_finance_finalizes_credits_and_voids_from_the_invoice_page(finance: User, draft: Invoice) -> None:
    client = client_for(finance)
    url = f"/billing/invoices/{draft.pk}/"
    assert 'data-testid="finalize"' in client.get(url).content.decode()

    client.post(f"{url}finalize/")
    draft.refresh_from_db()
    assert draft.status == InvoiceStatus.FINALIZED

    response = client.post(f"{url}credit-note/", {"amount": "abc", "reason": "x"}, follow=True)
    assert response.status_code == 200
    assert "Give the amount as a number" in response.content.decode()
    response = client.post(f"{url}credit-note/", {"amount": "NaN", "reason": "x"}, follow=True)
    assert "Give the amount as a number" in response.content.decode()
    client.post(f"{url}credit-note/", {"amount": "5,00", "reason": "Goodwill"})
    assert CreditNote.objects.get().amount == 5

    response = client.post(f"{url}void/", {"reason": ""}, follow=True)
    assert "Say why" in response.content.decode()
    response = client.post(f"{url}void/", {"reason": "Wrong plan"}, follow=True)
    assert "correct it with another credit note" in response.content.decode()
    draft.refresh_from_db()
    assert draft.status == InvoiceStatus.FINALIZED


def test_customer_admins_cannot_act_on_invoices(admin_a: User, draft: Invoice) -> None:
    services.invoice_finalize(actor=None, invoice=draft)
    assert client_for(admin_a).post(f"/billing/invoices/{draft.pk}/mark-paid/").status_code == 403
    draft.refresh_from_db()
    assert draft.status == InvoiceStatus.FINALIZED


def test_finance_starts_a_run_from_the_page(finance: User) -> None:
    client = client_for(finance)
    response = client.post("/billing/runs/", {"period": "2026-10"}, follow=True)
    assert "Invoice run for 2026-10 started" in response.content.decode()
    assert InvoiceRun.objects.get().period == "2026-10"
    response = client.post("/billing/runs/", {"period": "2026-1"}, follow=True)
    assert "YYYY-MM" in response.content.decode()
    assert InvoiceRun.objects.count() == 1


def test_the_revenue_page_charts_finalized_invoices(finance: User, draft: Invoice) -> None:
    services.invoice_finalize(actor=None, invoice=draft)
    page = client_for(finance).get("/billing/revenue/").content.decode()
    assert 'id="revenue-data"' in page
    assert "Revenue in EUR" in page
    assert "Alpha Dairy" in page
    assert "Bravo" not in page  # B's invoice is still a draft


def test_home_pages_show_usage_and_the_billing_desk(viewer_a: User, finance: User, draft: Invoice) -> None:
    assert "Usage this month" in client_for(viewer_a).get("/").content.decode()
    desk = client_for(finance).get("/").content.decode()
    assert "2 drafts</strong> for 2026-10" in desk


def test_finance_creates_a_contract_from_the_form(
    finance: User, plan: Any, fleet_a: Installed, fleet_b: Installed
) -> None:
    client = client_for(finance)
    assert "New contract" in client.get("/billing/contracts/").content.decode()
    form = {
        "customer": str(fleet_a.asset.customer_id), "plan": str(plan.pk), "start_date": "2026-11-01",
        "status": "active", "assets": [str(fleet_a.asset.pk), str(fleet_b.asset.pk)], "uptime_target": "99.5",
        "service_credits": "99.5:5, 99:10",
        **{f"respond_P{n}": "60" for n in range(1, 5)}, **{f"resolve_P{n}": "480" for n in range(1, 5)},
    }  # fmt: skip
    refused = client.post("/billing/contracts/new/", form)
    assert "belongs to Bravo Breweries" in refused.content.decode()
    assert not Contract.objects.exists()
    form["assets"] = [str(fleet_a.asset.pk)]
    form["service_credits"] = "99.5:five"
    assert "Write steps as" in client.post("/billing/contracts/new/", form).content.decode()
    form["service_credits"] = "99.5:5, 99:10"
    response = client.post("/billing/contracts/new/", form, follow=True)
    contract = Contract.objects.get()
    assert "created" in response.content.decode()
    assert (contract.customer_id, contract.first_response_minutes["P2"], contract.service_credits[1]) == (
        fleet_a.asset.customer_id, 60, {"below": "99", "credit_percent": "10"},
    )  # fmt: skip
    assert [c.asset for c in contract.coverages.all()] == [fleet_a.asset]


def test_only_finance_and_operators_create_contracts(support: User, admin_a: User) -> None:
    assert client_for(support).get("/billing/contracts/new/").status_code == 403
    assert client_for(admin_a).get("/billing/contracts/new/").status_code == 403
