"""A contract's purchase order: set on the form and the API, shown on the contract page, printed
on its invoices (kept in the invoice's bill-to when finalized)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from billing import services
from billing.invoicing import bill_period
from billing.models import Contract, Invoice
from portal.models import User
from tests.billing_fixtures import usage
from tests.conftest import client_for
from tests.fleet_fixtures import Installed

JSON = "application/json"


@pytest.fixture
def draft(contract_a: Contract, fleet_a: Installed) -> Invoice:
    usage(fleet_a.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "10")
    bill_period("2026-10", now=datetime(2026, 11, 5, tzinfo=UTC))
    return Invoice.objects.get(contract=contract_a)


def test_finance_gives_a_new_contract_its_purchase_order(
    finance: User, plan: Any, fleet_a: Installed
) -> None:
    form = {
        "customer": str(fleet_a.asset.customer_id), "plan": str(plan.pk), "start_date": "2026-11-01",
        "status": "active", "assets": [str(fleet_a.asset.pk)], "purchase_order": " PO-4711 ",
        "service_credits": "", **{f"respond_P{n}": "60" for n in range(1, 5)},
        **{f"resolve_P{n}": "480" for n in range(1, 5)},
    }  # fmt: skip
    client = client_for(finance)
    assert 'name="purchase_order"' in client.get("/billing/contracts/new/").content.decode()

    page = client.post("/billing/contracts/new/", form, follow=True).content.decode()

    assert Contract.objects.get().purchase_order == "PO-4711"
    assert '<dd data-field="purchase_order">PO-4711</dd>' in page


def test_the_api_sets_and_changes_the_purchase_order(
    finance: User, admin_a: User, plan: Any, fleet_a: Installed
) -> None:
    client = client_for(finance)
    created = client.post(
        "/api/v1/contracts/",
        {"customer": str(fleet_a.asset.customer_id), "plan": str(plan.pk), "start_date": "2026-11-01",
         "purchase_order": "PO-1"},
        content_type=JSON,
    )  # fmt: skip
    assert created.status_code == 201, created.json()
    url = f"/api/v1/contracts/{created.json()['id']}/"

    changed = client.patch(url, {"purchase_order": "PO-2"}, content_type=JSON)
    too_long = client.patch(url, {"purchase_order": "P" * 61}, content_type=JSON)
    by_customer = client_for(admin_a).patch(url, {"purchase_order": "mine"}, content_type=JSON)

    assert (changed.status_code, changed.json()["purchase_order"]) == (200, "PO-2")
    assert too_long.status_code == 400
    assert too_long.json()["errors"][0]["field"] == "purchase_order"
    assert by_customer.status_code == 403
    assert client_for(admin_a).get(url).json()["purchase_order"] == "PO-2"


def test_a_finalized_invoice_keeps_the_purchase_order_it_was_issued_under(
    finance: User, admin_a: User, draft: Invoice
) -> None:
    contract = draft.contract
    services.contract_update(actor=None, contract=contract, purchase_order="PO-OLD")
    draft_page = client_for(finance).get(f"/billing/invoices/{draft.pk}/").content.decode()
    invoice = services.invoice_finalize(actor=None, invoice=draft)
    services.contract_update(actor=None, contract=contract, purchase_order="PO-NEW")

    page = client_for(admin_a).get(f"/billing/invoices/{invoice.pk}/").content.decode()

    assert '<dd data-field="purchase_order">PO-OLD</dd>' in draft_page
    assert "as it will be printed" in draft_page
    assert '<dd data-field="purchase_order">PO-OLD</dd>' in page
    assert "PO-NEW" not in page
