"""A customer's billing identity: the page operators and finance edit it on, the API, who may see
it, what invoices keep of it, and the locale a user reads figures in."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from stdnum import vatin

from billing import services as billing_services
from billing.invoicing import bill_period
from billing.models import Contract, Invoice
from portal.demo import CUSTOMERS
from portal.models import AuditEntry, Customer, TaxCategory, User
from tests.billing_fixtures import usage
from tests.conftest import client_for
from tests.fleet_fixtures import Installed

JSON = "application/json"

IDENTITY = {
    "legal_name": "Alpha Dairy GmbH",
    "address_line1": "Milchstraße 4",
    "address_line2": "Tor 2",
    "postal_code": "20095",
    "city": "Hamburg",
    "country": "DE",
    "vat_id": "DE 136 695 976",
    "tax_rate": "19",
    "tax_category": "S",
    "tax_exemption_reason": "",
    "billing_email": "ap@alpha.example",
    "locale": "de-DE",
}


def _page(customer: Customer) -> str:
    return f"/customers/{customer.pk}/billing/"


def _updates(customer: Customer) -> list[tuple[str, dict[str, Any]]]:
    entries = AuditEntry.objects.filter(target_id=str(customer.pk), action="customer.updated")
    return [(e.actor_label, e.data) for e in entries.order_by("created_at")]


@pytest.mark.parametrize("role", ["operator", "finance"])
def test_operators_and_finance_edit_the_identity_on_its_page_audited(
    role: str, request: pytest.FixtureRequest, customer_a: Customer
) -> None:
    actor: User = request.getfixturevalue(role)
    client = client_for(actor)
    assert 'name="vat_id"' in client.get(_page(customer_a)).content.decode()

    response = client.post(_page(customer_a), IDENTITY, follow=True)

    customer_a.refresh_from_db()
    assert response.redirect_chain[-1][0] == f"/customers/{customer_a.pk}/"
    assert (customer_a.legal_name, customer_a.vat_id, str(customer_a.country), customer_a.locale) == (
        "Alpha Dairy GmbH", "DE136695976", "DE", "de-DE",
    )  # fmt: skip
    [(actor_label, data)] = _updates(customer_a)
    assert actor_label == actor.email
    assert data["vat_id"] == "DE136695976"
    assert data["country"] == "DE"
    assert "tax_rate" not in data  # 19 % as before: only what changed is written and audited
    page = response.content.decode()
    assert "Alpha Dairy GmbH" in page
    assert "Germany" in page
    assert "DE136695976" in page


@pytest.mark.parametrize(
    ("vat_id", "verdict"),
    [
        ("DE136695977", "check digit is wrong"),
        ("DE13669597", "wrong length"),
        ("136695976", "Start the VAT ID with its country code"),
    ],
)
def test_a_bad_vat_id_is_refused_next_to_its_field_and_nothing_is_saved(
    finance: User, customer_a: Customer, vat_id: str, verdict: str
) -> None:
    before = Customer.objects.filter(pk=customer_a.pk).values().get()

    response = client_for(finance).post(_page(customer_a), {**IDENTITY, "vat_id": vat_id})

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert list(errors) == ["vat_id"]
    assert verdict in errors["vat_id"][0]
    assert verdict in response.content.decode()
    assert Customer.objects.filter(pk=customer_a.pk).values().get() == before
    assert _updates(customer_a) == []


def test_no_vat_needs_a_reason_and_a_zero_rate(finance: User, customer_a: Customer) -> None:
    client = client_for(finance)
    refused = client.post(_page(customer_a), {**IDENTITY, "tax_category": "AE"})
    standard_at_zero = client.post(_page(customer_a), {**IDENTITY, "tax_rate": "0"})
    accepted = client.post(
        _page(customer_a),
        {**IDENTITY, "tax_category": "AE", "tax_rate": "0", "tax_exemption_reason": "Reverse charge"},
    )

    assert set(refused.context["form"].errors) == {"tax_rate", "tax_exemption_reason"}
    assert set(standard_at_zero.context["form"].errors) == {"tax_category"}
    assert accepted.status_code == 302
    customer_a.refresh_from_db()
    assert (customer_a.tax_category, customer_a.tax_rate) == (TaxCategory.REVERSE_CHARGE, Decimal("0"))


def test_a_tax_rate_of_6_25_percent_round_trips_exactly(operator: User, customer_a: Customer) -> None:
    client = client_for(operator)

    client.post(_page(customer_a), {**IDENTITY, "tax_rate": "6,25"})

    customer_a.refresh_from_db()
    assert customer_a.tax_rate == Decimal("0.0625")
    assert 'value="6.25"' in client.get(_page(customer_a)).content.decode()
    assert "6.25\xa0%" in client.get("/customers/").content.decode()
    assert "6.25\xa0%" in client.get(f"/customers/{customer_a.pk}/").content.decode()
    client.post(_page(customer_a), {**IDENTITY, "tax_rate": "6.255"})
    customer_a.refresh_from_db()
    assert customer_a.tax_rate == Decimal("0.0625")  # two decimals of a percent at most


def test_customer_users_and_support_cannot_reach_the_edit_page(
    viewer_a: User, admin_a: User, support: User, customer_a: Customer, customer_b: Customer
) -> None:
    for user in (viewer_a, admin_a, support):
        client = client_for(user)
        assert client.get(_page(customer_a)).status_code == 403
        assert client.post(_page(customer_a), IDENTITY).status_code == 403
        assert client.get(_page(customer_b)).status_code == 403
    assert Customer.objects.get(pk=customer_a.pk).legal_name == ""


def test_a_customer_admin_sees_its_own_identity_read_only_never_another(
    admin_a: User, operator: User, customer_a: Customer, customer_b: Customer
) -> None:
    client_for(operator).post(_page(customer_a), IDENTITY)
    Customer.objects.filter(pk=customer_b.pk).update(legal_name="Bravo Breweries LLC", vat_id="FR40303265045")
    client = client_for(admin_a)

    profile = client.get("/accounts/profile/").content.decode()

    # The customer overview is staff's: a customer user reads its identity on its profile.
    assert client.get(f"/customers/{customer_a.pk}/").status_code == 403
    assert 'data-testid="edit-identity"' not in profile
    assert "Alpha Dairy GmbH" in profile
    assert "DE136695976" in profile
    assert client.get(f"/customers/{customer_b.pk}/").status_code == 403
    assert "FR40303265045" not in profile


# The API ---------------------------------------------------------------------------------


def test_the_api_shows_the_identity_with_the_country_as_its_iso_code(
    admin_a: User, operator: User, customer_a: Customer
) -> None:
    client_for(operator).post(_page(customer_a), IDENTITY)

    body = client_for(admin_a).get(f"/api/v1/customers/{customer_a.pk}/").json()

    shown = ("legal_name", "country", "vat_id", "tax_category", "locale", "tax_rate")
    assert {k: body[k] for k in shown} == {
        "legal_name": "Alpha Dairy GmbH", "country": "DE", "vat_id": "DE136695976", "tax_category": "S",
        "locale": "de-DE", "tax_rate": "0.1900",
    }  # fmt: skip


def test_finance_patches_the_identity_and_tax_rate_but_nothing_else(
    finance: User, customer_a: Customer
) -> None:
    client = client_for(finance)
    url = f"/api/v1/customers/{customer_a.pk}/"

    changed = client.patch(
        url, {"legal_name": "Alpha Dairy AG", "country": "AT", "tax_rate": "0.2", "locale": "de-AT"}, JSON
    )
    renamed = client.patch(url, {"name": "Mine now", "legal_name": "Alpha Dairy SE"}, JSON)

    assert changed.status_code == 200, changed.json()
    assert (changed.json()["country"], changed.json()["tax_rate"]) == ("AT", "0.2000")
    assert renamed.status_code == 403
    assert renamed.json() == {
        "detail": "Finance may change a customer's billing identity and tax rate, not name."
    }
    customer_a.refresh_from_db()
    assert (customer_a.name, customer_a.legal_name) == ("Alpha Dairy", "Alpha Dairy AG")
    assert _updates(customer_a) == [
        (
            finance.email,
            {"legal_name": "Alpha Dairy AG", "country": "AT", "tax_rate": "0.2000", "locale": "de-AT"},
        )
    ]


def test_an_invalid_vat_id_answers_400_with_a_field_error(operator: User, customer_a: Customer) -> None:
    response = client_for(operator).patch(
        f"/api/v1/customers/{customer_a.pk}/", {"vat_id": "DE136695977", "legal_name": "X"}, JSON
    )

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"field": "vat_id", "message": "This VAT ID's check digit is wrong; check for a typo."}
    ]
    assert Customer.objects.get(pk=customer_a.pk).legal_name == ""


@pytest.mark.parametrize(("category", "reason"), [("AE", "Reverse charge"), ("K", "Intra-community supply")])
def test_reverse_charge_and_intra_community_supply_need_the_buyers_vat_id(
    operator: User, customer_a: Customer, category: str, reason: str
) -> None:
    body = {"tax_category": category, "tax_rate": "0", "tax_exemption_reason": reason, "vat_id": ""}
    refused = client_for(operator).patch(f"/api/v1/customers/{customer_a.pk}/", body, JSON)
    assert refused.status_code == 400
    assert [e["field"] for e in refused.json()["errors"]] == ["vat_id"]
    accepted = client_for(operator).patch(
        f"/api/v1/customers/{customer_a.pk}/", {**body, "vat_id": "FR40303265045"}, JSON
    )
    assert accepted.status_code == 200
    assert Customer.objects.get(pk=customer_a.pk).tax_category == category


@pytest.mark.parametrize("who", ["support", "admin_a", "viewer_a"])
def test_other_roles_may_not_patch_a_customer(
    who: str, request: pytest.FixtureRequest, customer_a: Customer
) -> None:
    response = client_for(request.getfixturevalue(who)).patch(
        f"/api/v1/customers/{customer_a.pk}/", {"legal_name": "Hijacked"}, JSON
    )

    assert response.status_code == 403
    assert set(response.json()) == {"detail"}
    assert Customer.objects.get(pk=customer_a.pk).legal_name == ""


def test_finance_cannot_patch_a_customer_it_does_not_know(finance: User) -> None:
    response = client_for(finance).patch(
        "/api/v1/customers/00000000-0000-0000-0000-000000000000/", {"legal_name": "X"}, JSON
    )
    assert response.status_code == 404


def test_customer_users_read_only_their_own_customer_on_the_api(
    admin_a: User, customer_a: Customer, customer_b: Customer
) -> None:
    Customer.objects.filter(pk=customer_b.pk).update(vat_id="FR40303265045")
    client = client_for(admin_a)

    listed = client.get("/api/v1/customers/").json()
    theirs = client.get(f"/api/v1/customers/{customer_b.pk}/")

    assert [c["id"] for c in listed["results"]] == [str(customer_a.pk)]
    assert theirs.status_code == 404
    assert "FR40303265045" not in str(listed)


# Invoices --------------------------------------------------------------------------------


@pytest.fixture
def invoice(contract_a: Contract, fleet_a: Installed) -> Invoice:
    """October's draft for customer A: 2,000 run hours at 0.50 + 100.00 fee = 1,100.00 + 19 %."""
    usage(fleet_a.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "2000")
    bill_period("2026-10", now=datetime(2026, 11, 5, tzinfo=UTC))
    return Invoice.objects.get(contract=contract_a)


def test_a_finalized_invoice_keeps_its_bill_to_when_the_customer_is_edited(
    finance: User, admin_a: User, customer_a: Customer, invoice: Invoice
) -> None:
    client = client_for(finance)
    client.post(_page(customer_a), IDENTITY)
    draft_page = client.get(f"/billing/invoices/{invoice.pk}/").content.decode()
    billing_services.invoice_finalize(actor=finance, invoice=invoice)

    client.post(
        _page(customer_a),
        {**IDENTITY, "legal_name": "Alpha Dairy Holding AG", "city": "Kiel", "vat_id": "NL004495445B01"},
    )
    page = client_for(admin_a).get(f"/billing/invoices/{invoice.pk}/").content.decode()

    assert "as it will be printed" in draft_page
    assert "Alpha Dairy GmbH" in draft_page
    assert "Alpha Dairy GmbH" in page
    assert "20095 Hamburg" in page
    assert "DE136695976" in page
    assert "Holding" not in page
    assert "Kiel" not in page
    assert "NL004495445B01" not in page
    assert "as it will be printed" not in page


def test_the_customer_page_prints_why_no_vat_is_charged(finance: User, customer_a: Customer) -> None:
    client_for(finance).post(
        _page(customer_a),
        {
            **IDENTITY,
            "tax_category": "AE",
            "tax_rate": "0",
            "tax_exemption_reason": "Reverse charge (Art. 196)",
        },
    )
    taxed = Customer.objects.get(pk=customer_a.pk)
    page = client_for(finance).get(f"/customers/{taxed.pk}/").content.decode()
    assert "Reverse charge (Art. 196)" in page


def test_a_reverse_charge_invoice_says_why_it_charges_no_vat(
    finance: User, admin_a: User, customer_a: Customer, contract_a: Contract, fleet_a: Installed
) -> None:
    reason = "Reverse charge: VAT to be accounted for by the recipient (Art. 196)"
    client_for(finance).post(
        _page(customer_a), {**IDENTITY, "tax_category": "AE", "tax_rate": "0", "tax_exemption_reason": reason}
    )
    usage(fleet_a.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "10")
    bill_period("2026-10", now=datetime(2026, 11, 5, tzinfo=UTC))
    invoice = billing_services.invoice_finalize(actor=None, invoice=Invoice.objects.get(contract=contract_a))

    page = client_for(admin_a).get(f"/billing/invoices/{invoice.pk}/").content.decode()

    assert invoice.tax_rate == 0
    assert invoice.bill_to["tax_exemption_reason"] == reason
    assert f'<dd data-field="tax_exemption_reason">{reason}</dd>' in page


def test_a_users_locale_sets_how_the_invoice_page_writes_money(admin_a: User, invoice: Invoice) -> None:
    billing_services.invoice_finalize(actor=None, invoice=invoice)
    client = client_for(admin_a)
    url = f"/billing/invoices/{invoice.pk}/"
    assert invoice.total == Decimal("1309.00")
    assert "€1,309.00" in client.get(url).content.decode()

    saved = client.post("/accounts/profile/", {"full_name": "Anton", "time_zone": "", "locale": "de-DE"})

    assert saved.status_code == 302
    page = client.get(url).content.decode()
    assert "1.309,00\xa0€" in page
    assert "€1,309.00" not in page
    client.post("/accounts/profile/", {"full_name": "Anton", "time_zone": "", "locale": ""})
    assert User.objects.get(pk=admin_a.pk).display_locale == "en"  # blank: the customer's again


def test_the_profile_offers_locales_by_name(viewer_a: User) -> None:
    page = client_for(viewer_a).get("/accounts/profile/").content.decode()
    assert "Deutsch (Deutschland) – German (Germany) (de-DE)" in page
    assert 'data-testid="billing-identity"' not in page  # a viewer is not shown how A is billed
    refused = client_for(viewer_a).post("/accounts/profile/", {"locale": "xx-NOPE"})
    assert "locale" in refused.context["form"].errors


# Demo data -------------------------------------------------------------------------------


def test_every_demo_customer_has_a_full_identity() -> None:
    for spec in CUSTOMERS:
        assert spec.legal_name
        assert spec.address_line1
        assert spec.postal_code
        assert spec.city
        assert spec.country
        assert not spec.vat_id or vatin.is_valid(spec.vat_id), spec.slug
    assert {s.slug for s in CUSTOMERS if s.currency == "USD"} == {"borealis"}
    assert [(s.slug, s.tax_rate) for s in CUSTOMERS if s.tax_category == TaxCategory.REVERSE_CHARGE] == [
        ("calypso", Decimal("0"))
    ]
    assert next(s for s in CUSTOMERS if s.country == "DE").locale == "de-DE"
