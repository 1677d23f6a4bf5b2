"""Negotiated prices: a contract's own price for a meter, set by finance, billed by the next run
and named on the invoice line (docs/billing.md, "Negotiated prices")."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from billing import overrides, services
from billing.invoicing import bill_period
from billing.models import Contract, ContractPriceOverride, Invoice
from portal.models import AuditEntry, User
from tests.billing_fixtures import usage
from tests.conftest import client_for
from tests.fleet_fixtures import Installed

AFTER_OCTOBER = datetime(2026, 11, 5, tzinfo=UTC)
API = "/api/v1/contracts/{}/price-overrides/"


def negotiate(contract: Contract, actor: User | None = None, **terms: object) -> ContractPriceOverride:
    values: dict[str, object] = {
        "metric": "run_hours", "label": "Run hours", "unit": "h", "charge_model": "per_unit",
        "unit_price": Decimal("0.30"), "note": "Negotiated 2026-09",
    }  # fmt: skip
    values.update(terms)
    return overrides.override_set(actor=actor, contract=contract, **values)


# Services ---------------------------------------------------------------------------------


def test_set_replace_and_remove_are_audited(contract_a: Contract, finance: User) -> None:
    negotiate(contract_a, finance)
    negotiate(contract_a, finance, unit_price=Decimal("0.25"), note="")
    override = contract_a.price_overrides.get()
    assert override.unit_price == Decimal("0.25")
    assert override.note == ""
    assert contract_a.pricing().component("run_hours").override == "Negotiated price"  # type: ignore[union-attr]

    overrides.override_remove(actor=finance, contract=contract_a, metric="run_hours")
    assert not contract_a.price_overrides.exists()
    actions = list(
        AuditEntry.objects.filter(actor=finance, customer=contract_a.customer)
        .order_by("created_at")
        .values_list("action", "data__replaced")
    )
    assert actions == [
        ("contract.price_override_set", False),
        ("contract.price_override_set", True),
        ("contract.price_override_removed", None),
    ]
    with pytest.raises(ValidationError):
        overrides.override_remove(actor=finance, contract=contract_a, metric="run_hours")


@pytest.mark.parametrize(
    ("terms", "errors"),
    [
        ({"metric": "temp_c"}, {"metric": ["'temp_c' is not a counter metric of any asset model."]}),
        ({"metric": "no_such"}, {"metric": ["'no_such' is not a counter metric of any asset model."]}),
        (
            {"charge_model": "graduated", "tiers": [{"up_to": "10", "unit_price": "1"}]},
            {"tiers": ["The last tier must be open-ended (up_to null)."]},
        ),
        ({"charge_model": "package"}, {"package_size": ["Package pricing needs a package size above zero."]}),
        ({"unit_price": Decimal("-1")}, {"unit_price": ["Ensure this value is greater than or equal to 0."]}),
    ],
)
def test_an_override_is_validated_like_a_component(
    contract_a: Contract, terms: dict[str, object], errors: dict[str, list[str]]
) -> None:
    with pytest.raises(ValidationError) as error:
        negotiate(contract_a, **terms)
    assert error.value.message_dict == errors
    assert not contract_a.price_overrides.exists()


def test_a_negotiated_price_is_billed_and_named_on_the_invoice_line(
    contract_a: Contract, contract_b: Contract, fleet_a: Installed, fleet_b: Installed
) -> None:
    negotiate(contract_a)
    for fleet in (fleet_a, fleet_b):
        usage(fleet.asset, datetime(2026, 10, 12, 8, tzinfo=UTC), "40")

    bill_period("2026-10", now=AFTER_OCTOBER)

    line = Invoice.objects.get(contract=contract_a).lines.get(metric="run_hours")
    assert line.amount == Decimal("12.00")  # 40 h × 0.30, not the plan's 0.50
    assert line.unit_price == Decimal("0.30")
    assert "Negotiated 2026-09" in line.description
    assert line.detail["override"] == "Negotiated 2026-09"
    invoice = Invoice.objects.get(contract=contract_a)
    assert invoice.pricing["components"][0]["override"] == "Negotiated 2026-09"  # the snapshot
    # Customer B's contract on the same plan is billed at the plan's price.
    other = Invoice.objects.get(contract=contract_b).lines.get(metric="run_hours")
    assert other.amount == Decimal("20.00")
    assert "egotiated" not in other.description

    # The page shows the line's note to the customer once finalized.
    services.invoice_finalize(actor=None, invoice=invoice)
    page = client_for_admin(contract_a).get(f"/billing/invoices/{invoice.pk}/").content.decode()
    assert "Negotiated 2026-09" in page


def client_for_admin(contract: Contract) -> object:
    from portal.roles import Role
    from tests.factories import UserFactory

    return client_for(UserFactory(role=Role.CUSTOMER_ADMIN, customer=contract.customer))


def test_an_override_for_a_meter_the_plan_does_not_price_adds_a_line(
    contract_a: Contract, fleet_a: Installed, compressor: object
) -> None:
    services.plan_update(actor=None, plan=contract_a.plan, components=[])  # the period fee only
    negotiate(contract_a, note="")
    usage(fleet_a.asset, datetime(2026, 10, 12, 8, tzinfo=UTC), "10")
    bill_period("2026-10", now=AFTER_OCTOBER)
    line = Invoice.objects.get(contract=contract_a).lines.get(metric="run_hours")
    assert line.amount == Decimal("3.00")
    assert "Negotiated price" in line.description


# Pages ------------------------------------------------------------------------------------


def test_the_contract_page_shows_negotiated_prices_to_who_may_see_the_contract(
    contract_a: Contract, viewer_a: User, finance: User, support: User
) -> None:
    negotiate(contract_a)
    for user, may_edit in ((viewer_a, False), (support, False), (finance, True)):
        page = client_for(user).get(f"/billing/contracts/{contract_a.pk}/").content.decode()
        assert "Negotiated prices" in page
        assert "Negotiated 2026-09" in page
        assert ('data-testid="edit-overrides"' in page) is may_edit


def test_finance_sets_replaces_and_removes_on_the_page(contract_a: Contract, finance: User) -> None:
    client = client_for(finance)
    url = f"/billing/contracts/{contract_a.pk}/price-overrides/"
    assert client.get(url).status_code == 200
    form = {
        "o-metric": "energy_kwh", "o-label": "Energy", "o-unit": "", "o-charge_model": "volume",
        "o-note": "Framework agreement", "o-tier_rows": "3",
        "o-tier_0_up_to": "500", "o-tier_0_unit_price": "0,18", "o-tier_1_unit_price": "0,12",
    }  # fmt: skip
    response = client.post(url, form)
    assert response.status_code == 302
    override = contract_a.price_overrides.get(metric="energy_kwh")
    assert override.unit == "kWh"  # the metric's own unit when none is typed
    assert override.tiers == [
        {"up_to": "500", "unit_price": "0.18", "flat_fee": "0"},
        {"up_to": None, "unit_price": "0.12", "flat_fee": "0"},
    ]
    page = client.get(f"{url}?metric=energy_kwh").content.decode()
    assert 'value="Framework agreement"' in page
    assert 'value="0.18"' in page

    bad = client.post(url, {**form, "o-tier_1_up_to": "400", "o-tier_2_unit_price": "0.1"})
    assert bad.status_code == 400
    assert "Tier bounds must increase and be above zero." in bad.content.decode()
    assert contract_a.price_overrides.get(metric="energy_kwh").tiers == override.tiers  # unchanged

    response = client.post(f"{url}energy_kwh/remove/")
    assert response.status_code == 302
    assert not contract_a.price_overrides.exists()


def test_override_pages_are_finance_s(
    contract_a: Contract, viewer_a: User, admin_a: User, support: User
) -> None:
    negotiate(contract_a)
    for user in (viewer_a, admin_a, support):
        client = client_for(user)
        assert client.get(f"/billing/contracts/{contract_a.pk}/price-overrides/").status_code == 403
        assert (
            client.post(f"/billing/contracts/{contract_a.pk}/price-overrides/run_hours/remove/").status_code
            == 403
        )
    assert contract_a.price_overrides.exists()


# API --------------------------------------------------------------------------------------


def test_finance_lists_creates_updates_and_deletes_over_the_api(contract_a: Contract, finance: User) -> None:
    client = client_for(finance)
    url = API.format(contract_a.pk)
    assert client.get(url).json() == []

    body = {
        "metric": "run_hours",
        "charge_model": "per_unit",
        "unit_price": "0.30",
        "note": "Negotiated 2026-09",
    }
    response = client.post(url, body, content_type="application/json")
    assert response.status_code == 201, response.json()
    assert response.json()["unit_price"] == "0.300000"
    assert response.json()["note"] == "Negotiated 2026-09"

    again = client.post(url, body, content_type="application/json")
    assert again.status_code == 400
    assert again.json()["errors"][0]["field"] == "metric"

    response = client.patch(f"{url}run_hours/", {"unit_price": "0.28"}, content_type="application/json")
    assert response.status_code == 200, response.json()
    assert (response.json()["unit_price"], response.json()["note"]) == ("0.280000", "Negotiated 2026-09")

    graduated = {"charge_model": "graduated", "tiers": [{"up_to": "100", "unit_price": "0.3"},
                                                         {"up_to": None, "unit_price": "0.2"}]}  # fmt: skip
    response = client.put(f"{url}run_hours/", graduated, content_type="application/json")
    assert response.status_code == 200, response.json()
    assert response.json()["note"] == ""  # PUT replaces everything
    assert [t["up_to"] for t in client.get(f"{url}run_hours/").json()["tiers"]] == ["100.000000", None]

    bad = client.patch(f"{url}run_hours/", {"tiers": []}, content_type="application/json")
    assert bad.status_code == 400
    assert bad.json()["errors"] == [
        {"field": "tiers", "message": "Graduated and volume pricing need at least one tier."}
    ]
    gauge = client.post(url, {**body, "metric": "temp_c"}, content_type="application/json")
    assert gauge.status_code == 400
    assert gauge.json()["errors"] == [
        {"field": "metric", "message": "'temp_c' is not a counter metric of any asset model."}
    ]

    assert client.delete(f"{url}run_hours/").status_code == 204
    assert client.get(f"{url}run_hours/").status_code == 404
    assert client.delete(f"{url}run_hours/").status_code == 404
    assert not contract_a.price_overrides.exists()


def test_customers_read_their_own_contracts_overrides_only(
    contract_a: Contract, contract_b: Contract, viewer_a: User, admin_a: User
) -> None:
    negotiate(contract_a)
    negotiate(contract_b, note="Bravo's secret deal")
    for user in (viewer_a, admin_a):
        client = client_for(user)
        mine = client.get(API.format(contract_a.pk))
        assert mine.status_code == 200
        assert [o["note"] for o in mine.json()] == ["Negotiated 2026-09"]
        assert client.get(f"{API.format(contract_a.pk)}run_hours/").status_code == 200
        # Writing is finance's.
        assert client.delete(f"{API.format(contract_a.pk)}run_hours/").status_code == 403
        assert client.post(API.format(contract_a.pk), {}, content_type="application/json").status_code == 403
        # Another customer's contract is not there at all.
        assert client.get(API.format(contract_b.pk)).status_code == 404
        assert client.get(f"{API.format(contract_b.pk)}run_hours/").status_code == 404
    assert overrides.overrides_visible_to(viewer_a).count() == 1
    assert contract_b.price_overrides.get().note == "Bravo's secret deal"
