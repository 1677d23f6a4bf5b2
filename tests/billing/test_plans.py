"""Finance's plan editor and plan versions: prices billed on a finalized invoice are never
changed under it (docs/billing.md, "Plans and their versions")."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from billing import services
from billing.invoicing import bill_period
from billing.models import Contract, Invoice, InvoiceStatus, Plan, PlanRevision
from portal.models import AuditEntry, User
from tests.billing_fixtures import usage
from tests.conftest import client_for
from tests.fleet_fixtures import Installed

AFTER_OCTOBER = datetime(2026, 11, 5, tzinfo=UTC)
AFTER_NOVEMBER = datetime(2026, 12, 3, tzinfo=UTC)


def editor_post(components: list[dict[str, str]], **plan: str) -> dict[str, str]:
    """The editor's form as a browser posts it: the plan, then the components formset."""
    data = {
        "code": "graduated-27", "name": "Graduated 2027", "currency": "EUR", "period_fee": "120,50",
        "minimum_commitment": "", "description": "", "is_active": "on",
        "c-TOTAL_FORMS": str(len(components)), "c-INITIAL_FORMS": "0", "c-MIN_NUM_FORMS": "0",
        "c-MAX_NUM_FORMS": "30",
    }  # fmt: skip
    data.update(plan)
    for index, component in enumerate(components):
        for key, value in component.items():
            data[f"c-{index}-{key}"] = value
    return data


GRADUATED = {
    "metric": "energy_kwh", "label": "Energy", "unit": "kWh", "charge_model": "graduated",
    "unit_price": "", "included_units": "", "package_size": "", "package_price": "", "tier_rows": "3",
    "tier_0_up_to": "1000", "tier_0_unit_price": "0,20", "tier_0_flat_fee": "",
    "tier_1_up_to": "", "tier_1_unit_price": "0.10", "tier_1_flat_fee": "5",
    "tier_2_up_to": "", "tier_2_unit_price": "", "tier_2_flat_fee": "",
}  # fmt: skip


ENERGY_AS_STORED = {**GRADUATED, "tier_0_unit_price": "0.2", "tier_1_flat_fee": ""}


def finalized_october(contract: Contract, fleet: Installed) -> Invoice:
    usage(fleet.asset, datetime(2026, 10, 12, 8, tzinfo=UTC), "10")
    bill_period("2026-10", now=AFTER_OCTOBER)
    return services.invoice_finalize(
        actor=None, invoice=Invoice.objects.get(contract=contract, period="2026-10")
    )


def run_hours_at(price: str) -> list[dict[str, Any]]:
    return [{"metric": "run_hours", "label": "Run hours", "unit": "h", "charge_model": "per_unit",
             "unit_price": Decimal(price)}]  # fmt: skip


# The editor -------------------------------------------------------------------------------


def test_finance_creates_a_plan_with_a_graduated_component(finance: User, compressor: object) -> None:
    client = client_for(finance)
    assert client.get("/billing/plans/new/").status_code == 200

    response = client.post("/billing/plans/new/", editor_post([GRADUATED]))

    plan = Plan.objects.get(code="graduated-27")
    assert response.status_code == 302
    assert response["Location"] == f"/billing/plans/{plan.pk}/"
    assert plan.period_fee == Decimal("120.50")  # typed with a comma
    assert plan.version == 1
    component = plan.components.get()
    assert component.tiers == [
        {"up_to": "1000", "unit_price": "0.20", "flat_fee": "0"},
        {"up_to": None, "unit_price": "0.10", "flat_fee": "5"},
    ]
    assert AuditEntry.objects.filter(action="plan.created", actor=finance).exists()
    page = client.get(response["Location"]).content.decode()
    assert "Graduated 2027" in page
    assert "€120.50" in page


def test_a_bad_tier_is_shown_next_to_the_tiers_and_nothing_is_saved(
    finance: User, compressor: object
) -> None:
    bad = {**GRADUATED, "tier_1_up_to": "500"}  # the last tier must be open-ended
    response = client_for(finance).post("/billing/plans/new/", editor_post([bad]))

    assert response.status_code == 400
    assert not Plan.objects.filter(code="graduated-27").exists()
    page = response.content.decode()
    assert 'data-testid="tier-error">The last tier must be open-ended (up_to null).' in page
    assert "Nothing was saved" in page
    # What was typed is kept for the fix.
    assert 'value="0,20"' in page


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("1.234,50", "Use one decimal mark and no thousands separator"),
        ("12.345", "Ensure that there are no more than 2 decimal places."),
        ("ten", "Enter a number."),
        ("-1", "Ensure this value is greater than or equal to 0."),
    ],
)
def test_decimals_get_a_clear_error(finance: User, compressor: object, typed: str, message: str) -> None:
    response = client_for(finance).post("/billing/plans/new/", editor_post([], period_fee=typed))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Plan.objects.exists()


def test_a_tier_row_without_a_price_and_a_meter_priced_twice_are_refused(
    finance: User, compressor: object
) -> None:
    no_price = {**GRADUATED, "tier_0_unit_price": ""}
    response = client_for(finance).post("/billing/plans/new/", editor_post([no_price]))
    assert "Each tier needs a unit price." in response.content.decode()

    twice = {**GRADUATED, "tier_0_up_to": "999"}
    response = client_for(finance).post("/billing/plans/new/", editor_post([GRADUATED, twice]))
    assert response.status_code == 400
    assert "This meter is priced twice in the plan." in response.content.decode()
    assert not Plan.objects.exists()


def test_more_rows_without_javascript_saves_nothing_and_keeps_what_was_typed(
    finance: User, compressor: object
) -> None:
    client = client_for(finance)
    response = client.post("/billing/plans/new/", {**editor_post([GRADUATED]), "more": "c-0"})
    page = response.content.decode()
    assert response.status_code == 200
    assert 'name="c-0-tier_3_up_to"' in page  # a fourth row
    assert 'value="0,20"' in page
    assert "Nothing was saved" not in page  # half-done is not judged

    response = client.post("/billing/plans/new/", {**editor_post([GRADUATED]), "more": "components"})
    assert 'name="c-1-metric"' in response.content.decode()
    assert not Plan.objects.exists()


def test_the_editor_shows_a_plan_and_saves_an_unchanged_form_as_the_same_version(
    finance: User, plan: Plan
) -> None:
    client = client_for(finance)
    page = client.get(f"/billing/plans/{plan.pk}/edit/").content.decode()
    assert 'value="0.5"' in page  # the run-hours unit price, as typed
    assert 'name="c-1-tier_0_up_to"' in page
    assert 'value="1000"' in page

    data = {
        "code": "flex", "name": "Flex (renamed)", "currency": "EUR", "period_fee": "100", "is_active": "on",
        "c-TOTAL_FORMS": "2", "c-INITIAL_FORMS": "2", "c-MIN_NUM_FORMS": "0", "c-MAX_NUM_FORMS": "30",
        "c-0-metric": "run_hours", "c-0-label": "Run hours", "c-0-unit": "h", "c-0-charge_model": "per_unit",
        "c-0-unit_price": "0.5", "c-0-tier_rows": "3",
        **{f"c-1-{k}": v for k, v in ENERGY_AS_STORED.items()},
    }  # fmt: skip
    response = client.post(f"/billing/plans/{plan.pk}/edit/", data)

    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.name == "Flex (renamed)"
    assert plan.version == 1
    assert [c.metric for c in plan.components.all()] == ["run_hours", "energy_kwh"]


def test_a_currency_change_of_a_plan_with_contracts_is_refused_next_to_the_currency(
    finance: User, contract_a: Contract
) -> None:
    plan = contract_a.plan
    data = {
        "code": "flex", "name": "Flex", "currency": "USD", "period_fee": "100",
        "c-TOTAL_FORMS": "0", "c-INITIAL_FORMS": "0", "c-MIN_NUM_FORMS": "0", "c-MAX_NUM_FORMS": "30",
    }  # fmt: skip
    response = client_for(finance).post(f"/billing/plans/{plan.pk}/edit/", data)
    assert response.status_code == 400
    assert "Contracts bill in this plan&#x27;s currency" in response.content.decode()
    plan.refresh_from_db()
    assert plan.currency == "EUR"
    assert plan.components.count() == 2  # nothing saved


def test_plan_pages_are_finance_s(cast: dict[str, User], plan: Plan) -> None:
    for role, user in cast.items():
        for url in ("/billing/plans/", "/billing/plans/new/", f"/billing/plans/{plan.pk}/",
                    f"/billing/plans/{plan.pk}/edit/"):  # fmt: skip
            expected = 200 if role in ("finance", "operator") else 403
            assert client_for(user).get(url).status_code == expected, (role, url)


def test_the_plan_list_formats_figures_in_the_plan_s_currency(finance: User, plan: Plan) -> None:
    page = client_for(finance).get("/billing/plans/").content.decode()
    page = page.replace("\u00a0", " ").replace("\u202f", " ")  # the locale's spaces
    assert "€100.00 a month" in page
    assert "0.50 EUR per h" in page
    assert "≤ 1,000.0 kWh: 0.20 EUR · above: 0.10 EUR" in page


# Versions ---------------------------------------------------------------------------------


def test_a_price_change_before_any_finalized_invoice_keeps_the_version(
    contract_a: Contract, fleet_a: Installed, finance: User
) -> None:
    usage(fleet_a.asset, datetime(2026, 10, 12, 8, tzinfo=UTC), "10")
    bill_period("2026-10", now=AFTER_OCTOBER)  # a draft only

    plan = services.plan_update(actor=finance, plan=contract_a.plan, period_fee=Decimal("110"))

    assert plan.version == 1
    assert not PlanRevision.objects.exists()
    bill_period("2026-10", now=AFTER_OCTOBER)
    draft = Invoice.objects.get(contract=contract_a, period="2026-10")
    assert draft.pricing["period_fee"] == "110.00"
    assert draft.pricing["plan_version"] == 1


def test_a_price_change_after_a_finalized_invoice_makes_version_2(
    contract_a: Contract, fleet_a: Installed, finance: User
) -> None:
    october = finalized_october(contract_a, fleet_a)

    def billed() -> Any:
        october.refresh_from_db()
        return october.pricing, october.total, [(x.description, x.amount) for x in october.lines.all()]

    before = billed()

    plan = services.plan_update(
        actor=finance, plan=contract_a.plan, components=run_hours_at("0.75"), period_fee=Decimal("100")
    )

    assert plan.version == 2
    revision = PlanRevision.objects.get(plan=plan)
    assert revision.version == 1
    assert revision.replaced_by == finance
    assert revision.pricing == october.pricing  # the old prices, exactly as they were billed
    assert [c["metric"] for c in revision.pricing["components"]] == ["run_hours", "energy_kwh"]
    october.refresh_from_db()
    assert (
        october.pricing,
        october.total,
        [(x.description, x.amount) for x in october.lines.all()],
    ) == before
    entry = AuditEntry.objects.get(action="plan.updated")
    assert entry.data["new_version"] is True
    assert entry.data["version"] == 2

    usage(fleet_a.asset, datetime(2026, 11, 12, 8, tzinfo=UTC), "10")
    bill_period("2026-11", now=AFTER_NOVEMBER)
    november = Invoice.objects.get(contract=contract_a, period="2026-11")
    assert november.pricing["plan_version"] == 2
    assert november.lines.get(metric="run_hours").amount == Decimal("7.50")  # 10 h × 0.75
    assert not november.lines.filter(metric="energy_kwh").exists()

    # A second change of version 2, before anything is finalized with it, stays version 2.
    plan = services.plan_update(actor=finance, plan=plan, period_fee=Decimal("105"))
    assert plan.version == 2
    assert PlanRevision.objects.count() == 1


def test_a_change_of_name_description_or_offer_keeps_the_version(
    contract_a: Contract, fleet_a: Installed
) -> None:
    finalized_october(contract_a, fleet_a)
    plan = services.plan_update(
        actor=None, plan=contract_a.plan, name="Flex classic", description="Old terms", is_active=False,
        components=[  # the same components, sent again
            {**run_hours_at("0.50")[0]},
            {"metric": "energy_kwh", "label": "Energy", "unit": "kWh", "charge_model": "graduated",
             "tiers": [{"up_to": "1000", "unit_price": "0.20"}, {"up_to": None, "unit_price": "0.10"}]},
        ],
    )  # fmt: skip
    assert plan.version == 1
    assert not PlanRevision.objects.exists()


def test_the_code_of_a_billed_plan_cannot_change(contract_a: Contract, fleet_a: Installed) -> None:
    finalized_october(contract_a, fleet_a)
    with pytest.raises(services.ValidationError) as error:
        services.plan_update(actor=None, plan=contract_a.plan, code="flex-2")
    assert error.value.message_dict == {"code": ["Invoices were finalized with this code; it cannot change."]}


def test_a_paid_invoice_counts_as_billed_and_a_void_one_does_not(
    contract_a: Contract, fleet_a: Installed
) -> None:
    october = finalized_october(contract_a, fleet_a)
    services.invoice_void(actor=None, invoice=october, reason="Wrong plan")
    assert services.plan_update(actor=None, plan=contract_a.plan, period_fee=Decimal("90")).version == 1
    Invoice.objects.filter(pk=october.pk).update(status=InvoiceStatus.PAID)  # its snapshot says v1
    assert services.plan_update(actor=None, plan=contract_a.plan, period_fee=Decimal("95")).version == 2


def test_the_detail_page_lists_components_contracts_and_versions(
    contract_a: Contract, fleet_a: Installed, finance: User
) -> None:
    finalized_october(contract_a, fleet_a)
    services.plan_update(actor=finance, plan=contract_a.plan, period_fee=Decimal("125"))
    page = client_for(finance).get(f"/billing/plans/{contract_a.plan.pk}/").content.decode()
    assert "version 2" in page
    assert contract_a.number in page
    assert 'data-version="1"' in page
    assert "€100.00 a month" in page  # version 1's fee
    assert "€125.00 a month" in page
    assert finance.email in page


def test_the_api_reports_the_version_and_versions_through_the_same_service(
    contract_a: Contract, fleet_a: Installed, finance: User
) -> None:
    finalized_october(contract_a, fleet_a)
    client = client_for(finance)
    url = f"/api/v1/plans/{contract_a.plan.pk}/"
    assert client.get(url).json()["version"] == 1
    response = client.patch(url, {"period_fee": "130.00"}, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["version"] == 2
    response = client.patch(url, {"name": "Flex 2"}, content_type="application/json")
    assert response.json()["version"] == 2
