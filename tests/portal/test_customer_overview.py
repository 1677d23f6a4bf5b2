"""The customer overview (/customers/<id>/) for staff: one customer's sites, machines, contracts,
invoices, open tickets, users and pending invitations on one page, each linked to its own page;
only that customer's, only what the role may see, in a bounded number of queries."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from django.utils import timezone

from billing.invoicing import bill_period
from billing.models import Contract, Invoice, Plan
from billing.services import invoice_finalize
from fleet.models import AssetModel, AssetStatus
from portal import services
from portal.models import Customer, User
from portal.roles import Role
from portal.templatetags.portal_tags import money
from support.models import Category, Ticket
from support.services import ticket_open
from tests.billing_fixtures import contract_for, usage
from tests.conftest import client_for
from tests.factories import SiteFactory
from tests.fleet_fixtures import Installed, install

AFTER_OCTOBER = datetime(2026, 11, 5, tzinfo=UTC)


def _furnish(customer: Customer, model: AssetModel, plan: Plan, tag: str, n: int = 1) -> list[Installed]:
    """n machines (each at a site of its own, under a contract, with an October invoice) and an
    open ticket per machine."""
    fleet = [install(customer, model, f"{tag}-{i}") for i in range(n)]
    for machine in fleet:
        contract_for(customer, plan, machine.asset, date(2026, 1, 1))
        usage(machine.asset, datetime(2026, 10, 3, 10, tzinfo=UTC), "10")
        ticket_open(
            actor=None, customer=customer, subject=f"Noise {machine.asset.serial_number}", description="Loud."
        )
        ticket_open(
            actor=None,
            customer=customer,
            subject=f"Bill {machine.asset.serial_number}",
            description="Why?",
            category=Category.BILLING,
        )
    bill_period("2026-10", now=AFTER_OCTOBER)
    return fleet


def _main(client: Any, customer: Customer) -> str:
    response = client.get(f"/customers/{customer.pk}/")
    assert response.status_code == 200
    return str(response.content.decode().split("<main", 1)[1].split("</main>", 1)[0])


@pytest.mark.parametrize("role", [Role.CUSTOMER_VIEWER, Role.CUSTOMER_ADMIN], ids=str)
def test_a_customer_user_cannot_open_any_overview(
    cast: dict[str, User], customer_a: Customer, customer_b: Customer, role: Role
) -> None:
    client = client_for(cast[role])

    own, other = client.get(f"/customers/{customer_a.pk}/"), client.get(f"/customers/{customer_b.pk}/")

    assert (own.status_code, other.status_code) == (403, 403)
    assert "Bravo" not in other.content.decode()


def test_support_sees_this_customers_fleet_and_tickets_and_nothing_of_another(
    support: User, customer_a: Customer, customer_b: Customer, compressor: AssetModel, plan: Plan
) -> None:
    mine = _furnish(customer_a, compressor, plan, "A")
    theirs = _furnish(customer_b, compressor, plan, "B")

    html = _main(client_for(support), customer_a)

    assert f'href="/fleet/assets/{mine[0].asset.pk}/"' in html
    assert "Alpha plant" in html
    assert 'data-field="status">Never seen' in html
    assert re.search(r'href="/support/tickets/[0-9a-f-]+/">[^<]+</a> Noise A-0', html)
    assert "Bill A-0" in html  # support works every ticket
    assert f'href="/billing/contracts/{Contract.objects.get(customer=customer_a).pk}/"' in html
    assert "Recent invoices" not in html  # support does not see invoices
    for text in ("B-0", "Bravo", str(theirs[0].asset.pk)):
        assert text not in html
    assert "Users and invitations" not in html


def test_finance_sees_contracts_invoices_and_billing_tickets_but_no_fleet(
    finance: User, customer_a: Customer, compressor: AssetModel, plan: Plan
) -> None:
    _furnish(customer_a, compressor, plan, "A")
    invoice = invoice_finalize(actor=None, invoice=Invoice.objects.get(customer=customer_a))

    html = _main(client_for(finance), customer_a)

    assert f'href="/billing/invoices/{invoice.pk}/">{invoice.number}</a>' in html
    assert invoice.amount_due > 0
    # The amount due in the invoice's currency at its minor unit, as the invoice list shows it.
    assert f'data-col="amount-due">{money(invoice.amount_due, invoice.currency)}</td>' in html
    assert "Bill A-0" in html
    assert "Noise A-0" not in html
    assert "Sites and machines" not in html
    assert "/fleet/assets/" not in html


def test_the_operator_sees_users_and_pending_invitations_and_the_steps_to_resume(
    operator: User, admin_a: User, customer_a: Customer
) -> None:
    services.user_invite(
        actor=operator, email="new@alpha.test", role=Role.CUSTOMER_VIEWER, customer=customer_a
    )

    html = _main(client_for(operator), customer_a)

    users = html.split('data-testid="overview-users"')[1]
    assert "admin@alpha.test" in users
    assert "data-pending" not in users.split("new@alpha.test")[0]
    assert "invitation pending" in users.split("new@alpha.test")[1].split("</li>")[0]
    actions = dict(re.findall(r'href="([^"]+)" data-action="([a-z]+)"', html))
    assert actions == {
        f"/customers/{customer_a.pk}/onboard/site/": "site",
        f"/customers/{customer_a.pk}/onboard/asset/": "asset",
        f"/customers/{customer_a.pk}/onboard/device/": "device",
        f"/customers/{customer_a.pk}/onboard/invite/": "invite",
    }
    assert "/admin/" not in html


def test_support_and_finance_get_no_onboarding_buttons(
    support: User, finance: User, customer_a: Customer
) -> None:
    for user in (support, finance):
        assert "data-action=" not in _main(client_for(user), customer_a)


def test_a_missing_customer_is_404_for_staff(support: User) -> None:
    assert client_for(support).get("/customers/00000000-0000-0000-0000-000000000000/").status_code == 404


@pytest.mark.parametrize("role", [Role.SUPPORT, Role.FINANCE, Role.OPERATOR], ids=str)
def test_the_overview_takes_the_same_queries_for_one_machine_or_thirty(
    cast: dict[str, User],
    customer_a: Customer,
    customer_b: Customer,
    compressor: AssetModel,
    plan: Plan,
    role: Role,
    django_assert_max_num_queries: Any,
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _furnish(customer_a, compressor, plan, "S", n=1)
    _furnish(customer_b, compressor, plan, "L", n=30)
    for i in range(30):
        SiteFactory(customer=customer_b, name=f"Depot {i}")
    client = client_for(cast[role])
    _main(client, customer_a)  # sessions, content types: warm

    with CaptureQueriesContext(connection) as small:
        _main(client, customer_a)
    with django_assert_max_num_queries(len(small.captured_queries)):
        html = _main(client, customer_b)
    assert len(small.captured_queries) <= 30
    if role != Role.FINANCE:
        assert "The first 25 of 60" in html or "The first 25 of 30" in html


def test_machine_status_reads_as_the_fleet_page_says_it(
    support: User, customer_a: Customer, compressor: AssetModel
) -> None:
    machine = install(customer_a, compressor, "ST-1")
    machine.asset.status, machine.asset.status_changed_at = AssetStatus.FAULT, timezone.now()
    machine.asset.save(update_fields=["status", "status_changed_at"])

    html = _main(client_for(support), customer_a)

    assert 'data-status-count="fault">1 fault' in html
    assert 'class="badge badge-bad" data-field="status">Fault' in html
    assert Ticket.objects.count() == 0
