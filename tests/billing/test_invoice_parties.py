"""The parties an invoice keeps, as the API shows them, and who sees who recorded a payment."""

from __future__ import annotations

from datetime import UTC, date, datetime

from billing import payments, services
from billing.invoicing import bill_period
from billing.models import Contract, Invoice
from portal.models import Customer, User
from tests.billing_fixtures import usage
from tests.conftest import client_for
from tests.fleet_fixtures import Installed


def _october(contract: Contract, fleet: Installed) -> Invoice:
    usage(fleet.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "10")
    bill_period("2026-10", now=datetime(2026, 11, 5, tzinfo=UTC))
    return Invoice.objects.get(contract=contract)


def test_the_api_shows_the_parties_as_finalized_and_none_on_a_draft(
    finance: User, admin_a: User, customer_a: Customer, contract_a: Contract, fleet_a: Installed
) -> None:
    customer_a.legal_name, customer_a.vat_id, customer_a.country = "Acme Cooling GmbH", "DE136695976", "DE"
    customer_a.address_line1, customer_a.postal_code, customer_a.city = "Ring 2", "10115", "Berlin"
    customer_a.save()
    contract_a.purchase_order = "PO-7781"
    contract_a.save()
    invoice = _october(contract_a, fleet_a)

    draft = client_for(finance).get(f"/api/v1/invoices/{invoice.pk}/").json()  # customers see no drafts
    assert draft["seller"] is None
    assert draft["bill_to"] is None

    services.invoice_finalize(actor=finance, invoice=invoice)
    customer_a.legal_name = "Renamed Later AG"  # an edit after finalizing changes nothing issued
    customer_a.save()
    body = client_for(admin_a).get(f"/api/v1/invoices/{invoice.pk}/").json()
    assert body["bill_to"]["name"] == "Acme Cooling GmbH"
    assert body["bill_to"]["vat_id"] == "DE136695976"
    assert body["bill_to"]["country"] == "DE"
    assert body["bill_to"]["purchase_order"] == "PO-7781"
    assert body["seller"]["vat_id"]
    assert body["seller"]["iban"]


def test_customers_see_a_payment_but_not_the_staff_address_that_recorded_it(
    finance: User, admin_a: User, contract_a: Contract, fleet_a: Installed
) -> None:
    invoice = _october(contract_a, fleet_a)
    services.invoice_finalize(actor=finance, invoice=invoice)
    payments.payment_record(
        actor=finance, invoice=invoice, amount=invoice.amount_due, received_on=date(2026, 11, 20),
        method="bank_transfer", reference="SEPA 1",
    )  # fmt: skip
    for path in (f"/api/v1/invoices/{invoice.pk}/payments/", "/api/v1/payments/"):
        seen_by_finance = client_for(finance).get(path).json()
        seen_by_customer = client_for(admin_a).get(path).json()
        rows_finance = seen_by_finance if isinstance(seen_by_finance, list) else seen_by_finance["results"]
        rows_customer = (
            seen_by_customer if isinstance(seen_by_customer, list) else seen_by_customer["results"]
        )
        assert [r["created_by"] for r in rows_finance] == [finance.email]
        assert [r["created_by"] for r in rows_customer] == [None]
    page = client_for(admin_a).get(f"/billing/invoices/{invoice.pk}/").content.decode()
    assert finance.email not in page
    assert finance.email in client_for(finance).get(f"/billing/invoices/{invoice.pk}/").content.decode()
