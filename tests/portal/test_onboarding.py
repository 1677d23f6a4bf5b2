"""Onboarding a customer in the portal (portal/onboarding.py, fleet/onboarding.py): each step
writes through its service when valid, shows the error next to the field and changes nothing
when not, offers only the customer's own sites and assets, and is the operator's alone."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from fleet.ingest.auth import hash_token
from fleet.models import Asset, AssetModel, Device, DeviceCredential, Site
from portal.models import AuditEntry, Customer, OutboxMessage, User
from portal.roles import Role
from tests.conftest import client_for
from tests.factories import AssetFactory, AssetModelFactory

CUSTOMER = {
    "name": "Delta Foods",
    "slug": "",
    "currency": "EUR",
    "time_zone": "Europe/Vienna",
    "legal_name": "Delta Foods GmbH",
    "address_line1": "Ringstraße 1",
    "address_line2": "",
    "postal_code": "1010",
    "city": "Wien",
    "country": "AT",
    "vat_id": "",
    "tax_rate": "20",
    "tax_category": "S",
    "tax_exemption_reason": "",
    "billing_email": "ap@delta.test",
    "locale": "de-AT",
}
UNKNOWN = "00000000-0000-0000-0000-000000000000"


def _errors(response: Any) -> dict[str, list[str]]:
    """The errors the page shows, by the field they stand next to (`__all__`: above the form)."""
    html = response.content.decode()
    found: dict[str, list[str]] = {}
    for block in re.findall(r'<div class="field field-invalid">(.*?)</div>', html, re.S):
        name = re.search(r'name="([^"]+)"', block)
        found[name.group(1) if name else "?"] = re.findall(r'<small class="error"[^>]*>(.*?)</small>', block)
    if 'class="form-errors"' in html:
        found["__all__"] = [re.sub(r"<[^>]+>", "", html.split('class="form-errors"')[1].split("</div>")[0])]
    return found


def _main(html: str) -> str:
    """The page's own content, without the navigation (which has the operator's Admin entry)."""
    return html.split("<main", 1)[1].split("</main>", 1)[0]


@pytest.fixture
def model(db: None) -> AssetModel:
    return AssetModelFactory(name="Screw compressor 37 kW")


# The customer --------------------------------------------------------------------------------


def test_the_customer_step_offers_zones_by_region_and_the_operators_zone_first(operator: User) -> None:
    operator.time_zone = "Europe/Berlin"
    operator.save()

    html = client_for(operator).get("/customers/onboard/").content.decode()

    assert '<optgroup label="Europe">' in html
    assert '<option value="Europe/Berlin" selected>Berlin</option>' in html
    assert 'name="tax_rate"' in html
    assert 'value="0"' not in html.split('name="tax_rate"')[1][:80]
    assert 'data-state="current"' in html
    assert "/admin/" not in _main(html)


def test_a_valid_customer_is_created_with_tax_as_a_percentage_and_leads_to_its_site(operator: User) -> None:
    response = client_for(operator).post("/customers/onboard/", CUSTOMER)

    customer = Customer.objects.get(name="Delta Foods")
    assert response.status_code == 302
    assert response["Location"] == f"/customers/{customer.pk}/onboard/site/"
    assert (customer.slug, customer.tax_rate, customer.time_zone, customer.locale) == (
        "delta-foods",
        Decimal("0.2000"),
        "Europe/Vienna",
        "de-AT",
    )
    assert customer.billing_identity()["city"] == "Wien"
    assert AuditEntry.objects.filter(
        action="customer.created", target_id=str(customer.pk), actor=operator
    ).exists()


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"tax_rate": "nineteen"}, "tax_rate", "Enter a number."),
        ({"tax_rate": "120"}, "tax_rate", "less than or equal to 100"),
        ({"time_zone": "Mars/Olympus"}, "time_zone", "Select a valid choice."),
        ({"vat_id": "ATU1234"}, "vat_id", "VAT ID"),
        ({"name": ""}, "name", "This field is required."),
        ({"slug": "alpha"}, "slug", "already exists"),
        ({"tax_category": "AE", "tax_rate": "0"}, "tax_exemption_reason", "Say why no VAT is charged"),
    ],
    ids=["tax-text", "tax-over-100", "zone", "vat", "name", "slug-taken", "reverse-charge"],
)
def test_an_invalid_customer_shows_the_error_next_to_its_field_and_creates_nothing(
    operator: User, customer_a: Customer, change: dict[str, str], field: str, message: str
) -> None:
    before = Customer.objects.count()

    response = client_for(operator).post("/customers/onboard/", {**CUSTOMER, **change})

    assert response.status_code == 400
    errors = _errors(response)
    assert field in errors, errors
    assert any(message in e for e in errors[field]), errors
    assert Customer.objects.count() == before


def test_a_second_customer_of_the_same_name_gets_a_free_slug(operator: User) -> None:
    client = client_for(operator)
    client.post("/customers/onboard/", CUSTOMER)
    client.post("/customers/onboard/", {**CUSTOMER, "legal_name": "Delta Foods AG"})

    assert sorted(Customer.objects.filter(name="Delta Foods").values_list("slug", flat=True)) == [
        "delta-foods",
        "delta-foods-2",
    ]


# The site ------------------------------------------------------------------------------------


def test_a_site_takes_the_customers_zone_unless_another_is_chosen(
    operator: User, customer_a: Customer
) -> None:
    client = client_for(operator)
    page = client.get(f"/customers/{customer_a.pk}/onboard/site/").content.decode()
    first = client.post(f"/customers/{customer_a.pk}/onboard/site/", {"name": "Plant Süd", "time_zone": ""})
    second = client.post(
        f"/customers/{customer_a.pk}/onboard/site/", {"name": "Depot", "time_zone": "Europe/Lisbon"}
    )

    assert '<option value="" selected>The customer&#x27;s (Europe/Berlin)</option>' in page
    assert first["Location"] == second["Location"] == f"/customers/{customer_a.pk}/onboard/asset/"
    sites = dict(Site.objects.for_customer(customer_a).values_list("name", "time_zone"))
    assert (sites["Plant Süd"], sites["Depot"]) == ("", "Europe/Lisbon")
    assert AuditEntry.objects.filter(action="site.created", customer=customer_a).count() == 2


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": ""}, "name", "This field is required."),
        ({"name": "Alpha plant"}, "name", "a site of this name already"),
        ({"name": "Elsewhere", "time_zone": "Nowhere/City"}, "time_zone", "Select a valid choice."),
    ],
    ids=["empty", "taken", "zone"],
)
def test_an_invalid_site_is_refused_on_its_field(
    operator: User, customer_a: Customer, data: dict[str, str], field: str, message: str
) -> None:
    response = client_for(operator).post(f"/customers/{customer_a.pk}/onboard/site/", data)

    assert response.status_code == 400
    assert any(message in e for e in _errors(response)[field])
    assert list(Site.objects.for_customer(customer_a).values_list("name", flat=True)) == ["Alpha plant"]


# The asset -----------------------------------------------------------------------------------


def _asset(customer: Customer, asset_model: AssetModel, **change: Any) -> dict[str, Any]:
    site = Site.objects.for_customer(customer).get()
    return {
        "model": asset_model.pk,
        "serial_number": "SC-1001",
        "name": "Compressor 1",
        "site": site.pk,
        **change,
    }


def test_an_asset_is_added_at_one_of_the_customers_sites(
    operator: User, customer_a: Customer, customer_b: Customer, model: AssetModel
) -> None:
    client = client_for(operator)
    page = client.get(f"/customers/{customer_a.pk}/onboard/asset/").content.decode()
    response = client.post(f"/customers/{customer_a.pk}/onboard/asset/", _asset(customer_a, model))

    assert "Alpha plant" in page
    assert "Bravo brewhouse" not in page
    assert "Screw compressor 37 kW" in page
    assert response["Location"] == f"/customers/{customer_a.pk}/onboard/device/"
    asset = Asset.objects.get(serial_number="SC-1001")
    assert (asset.customer_id, asset.site.name, asset.model_id) == (customer_a.pk, "Alpha plant", model.pk)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"site": "theirs"}, "site", "Unknown site."),
        ({"site": UNKNOWN}, "site", "Unknown site."),
        ({"site": "not-an-id"}, "site", "Unknown site."),
        ({"model": UNKNOWN}, "model", "Unknown asset model."),
        ({"serial_number": "TAKEN-1"}, "serial_number", "already exists"),
        ({"serial_number": ""}, "serial_number", "This field is required."),
        ({"commissioned_on": "0001-01-01"}, "commissioned_on", "Enter a date from 1970 to 2999."),
    ],
    ids=[
        "other-customers-site",
        "missing-site",
        "malformed-site",
        "model",
        "serial-taken",
        "serial-empty",
        "date",
    ],
)
def test_an_invalid_asset_is_refused_on_its_field(
    operator: User,
    customer_a: Customer,
    customer_b: Customer,
    model: AssetModel,
    change: dict[str, str],
    field: str,
    message: str,
) -> None:
    AssetFactory(site=Site.objects.for_customer(customer_b).get(), serial_number="TAKEN-1")
    if change.get("site") == "theirs":
        change = {"site": str(Site.objects.for_customer(customer_b).get().pk)}
    before = Asset.objects.count()

    response = client_for(operator).post(
        f"/customers/{customer_a.pk}/onboard/asset/", _asset(customer_a, model, **change)
    )

    assert response.status_code == 400
    assert any(message in e for e in _errors(response)[field]), _errors(response)
    assert Asset.objects.count() == before


def test_the_asset_step_asks_for_a_site_first(operator: User, model: AssetModel) -> None:
    bare = Customer.objects.create(name="Echo", slug="echo")

    response = client_for(operator).post(f"/customers/{bare.pk}/onboard/asset/", {"model": model.pk})

    assert response.status_code == 400
    assert f"/customers/{bare.pk}/onboard/site/" in response.content.decode()
    assert not Asset.objects.exists()


# The device ----------------------------------------------------------------------------------


def test_a_device_is_installed_on_the_new_asset_and_its_token_shown_once(
    operator: User, customer_a: Customer, model: AssetModel
) -> None:
    site = Site.objects.for_customer(customer_a).get()
    AssetFactory(site=site, model=model, name="Older")
    asset = AssetFactory(site=site, model=model, name="Newest")
    client = client_for(operator)
    page = client.get(f"/customers/{customer_a.pk}/onboard/device/").content.decode()

    response = client.post(
        f"/customers/{customer_a.pk}/onboard/device/",
        {"asset": asset.pk, "serial_number": "GW-77", "firmware": "2.1"},
    )

    assert re.search(rf'<option value="{asset.pk}" selected>', page)
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    token = re.search(r'value="(fpd_[^"]+)"', response.content.decode())
    assert token is not None
    device = Device.objects.get(serial_number="GW-77")
    assert (device.asset_id, device.customer_id, device.firmware) == (asset.pk, customer_a.pk, "2.1")
    assert DeviceCredential.objects.get(device=device).token_hash == hash_token(token.group(1))
    assert f"/customers/{customer_a.pk}/onboard/invite/" in response.content.decode()
    assert {"device.installed", "device.token_issued"} <= set(
        AuditEntry.objects.filter(customer=customer_a, actor=operator).values_list("action", flat=True)
    )
    # Shown once: the step's page afterwards has no token.
    assert "fpd_" not in client.get(f"/customers/{customer_a.pk}/onboard/device/").content.decode()


@pytest.mark.parametrize(
    ("asset", "serial", "field", "message"),
    [
        ("theirs", "GW-1", "asset", "Unknown asset."),
        (UNKNOWN, "GW-1", "asset", "Unknown asset."),
        ("mine", "", "serial_number", "This field is required."),
        ("mine", "GW-TAKEN", "serial_number", "already exists"),
    ],
    ids=["other-customers-asset", "missing-asset", "serial-empty", "serial-taken"],
)
def test_an_invalid_device_is_refused_on_its_field_and_issues_no_token(
    operator: User,
    customer_a: Customer,
    customer_b: Customer,
    asset: str,
    serial: str,
    field: str,
    message: str,
) -> None:
    mine = AssetFactory(site=Site.objects.for_customer(customer_a).get())
    theirs = AssetFactory(site=Site.objects.for_customer(customer_b).get())
    Device.objects.create(customer=customer_b, asset=theirs, serial_number="GW-TAKEN")
    chosen = {"theirs": theirs.pk, "mine": mine.pk}.get(asset, asset)

    response = client_for(operator).post(
        f"/customers/{customer_a.pk}/onboard/device/", {"asset": chosen, "serial_number": serial}
    )

    assert response.status_code == 400
    assert any(message in e for e in _errors(response)[field]), _errors(response)
    assert "fpd_" not in response.content.decode()
    assert not Device.objects.filter(asset=mine).exists()
    assert not DeviceCredential.objects.exists()


# The admin's invitation ----------------------------------------------------------------------


def test_the_admin_is_invited_through_the_outbox_and_the_operator_lands_on_the_overview(
    operator: User, customer_a: Customer
) -> None:
    response = client_for(operator).post(
        f"/customers/{customer_a.pk}/onboard/invite/", {"email": "Boss@Alpha.test", "full_name": "Ada Boss"}
    )

    assert response["Location"] == f"/customers/{customer_a.pk}/"
    invited = User.objects.get(email="boss@alpha.test")
    assert (invited.role, invited.customer_id, invited.has_usable_password()) == (
        Role.CUSTOMER_ADMIN,
        customer_a.pk,
        False,
    )
    assert list(
        OutboxMessage.objects.filter(task="portal.user_invite_send").values_list("kwargs", flat=True)
    ) == [{"user_id": str(invited.pk)}]


def test_an_address_that_has_an_account_is_refused_on_the_field(
    operator: User, customer_a: Customer, viewer_b: User
) -> None:
    response = client_for(operator).post(
        f"/customers/{customer_a.pk}/onboard/invite/", {"email": viewer_b.email}
    )

    assert response.status_code == 400
    assert _errors(response)["email"] == ["A user with this e-mail address already exists."]
    assert not OutboxMessage.objects.filter(task="portal.user_invite_send").exists()


# Who may -------------------------------------------------------------------------------------

STEPS = ["site", "asset", "device", "invite"]


@pytest.mark.parametrize(
    "role", [Role.CUSTOMER_VIEWER, Role.CUSTOMER_ADMIN, Role.SUPPORT, Role.FINANCE], ids=str
)
def test_no_role_but_the_operator_may_onboard(
    cast: dict[str, User], customer_a: Customer, model: AssetModel, role: Role
) -> None:
    client = client_for(cast[role])
    customers, users = Customer.objects.count(), User.objects.count()

    answers = [
        client.get("/customers/onboard/").status_code,
        client.post("/customers/onboard/", CUSTOMER).status_code,
    ]
    for step in STEPS:
        url = f"/customers/{customer_a.pk}/onboard/{step}/"
        answers += [
            client.get(url).status_code,
            client.post(url, {"name": "X", "email": "x@x.test"}).status_code,
        ]

    assert set(answers) == {403}
    assert (Customer.objects.count(), User.objects.count(), Site.objects.count()) == (customers, users, 2)


@pytest.mark.parametrize("step", STEPS)
def test_a_missing_or_inactive_customer_is_404(operator: User, customer_a: Customer, step: str) -> None:
    customer_a.is_active = False
    customer_a.save()
    client = client_for(operator)

    assert client.get(f"/customers/{UNKNOWN}/onboard/{step}/").status_code == 404
    assert client.post(f"/customers/{customer_a.pk}/onboard/{step}/", {"name": "X"}).status_code == 404
    assert Site.objects.for_customer(customer_a).count() == 1


def test_an_anonymous_visitor_is_sent_to_log_in(customer_a: Customer) -> None:
    response = Client().get(f"/customers/{customer_a.pk}/onboard/site/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_step_indicator_marks_what_is_done(operator: User, customer_a: Customer) -> None:
    html = client_for(operator).get(f"/customers/{customer_a.pk}/onboard/device/").content.decode()

    states = dict(re.findall(r'data-step="([a-z]+)" data-state="([a-z]+)"', html))
    assert states == {
        "customer": "done",
        "site": "done",
        "asset": "todo",
        "device": "current",
        "admin": "todo",
    }
    assert "/admin/" not in _main(html)


@pytest.mark.parametrize("page", ["/", "/customers/"])
def test_the_operators_way_in_is_the_portal_not_the_admin(
    operator: User, customer_a: Customer, page: str
) -> None:
    html = _main(client_for(operator).get(page).content.decode())

    assert 'href="/customers/onboard/"' in html
    assert "/admin/" not in html


def test_the_way_in_is_not_offered_to_who_may_not_onboard(support: User, customer_a: Customer) -> None:
    assert "/customers/onboard/" not in client_for(support).get("/customers/").content.decode()
