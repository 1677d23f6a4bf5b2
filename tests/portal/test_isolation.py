"""Tenancy: a customer A user never sees customer B's rows, and B's ids answer 404.

ISOLATION_CASES names every tenant-owned model with a way to make one of B's rows and the
pages and API endpoints that show it. `test_every_tenant_model_is_covered` fails when a new
model with a `customer` field is added without a case here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.apps import apps
from django.db import models

from portal.models import ApiToken, AuditEntry, Customer, User
from portal.roles import Role
from tests.conftest import client_for
from tests.factories import (
    AssetFactory,
    AuditEntryFactory,
    DeviceCredentialFactory,
    DeviceFactory,
    HeartbeatFactory,
    HourlyUsageFactory,
    SiteFactory,
    UserFactory,
)

OUR_APPS = {"portal", "fleet", "billing", "support"}


@dataclass
class Case:
    make: Callable[[Customer], models.Model]  # one row owned by the given customer
    # "{pk}" is the row's id; "{row.asset_id}" and the like reach its fields.
    detail_urls: list[str] = field(default_factory=list)
    list_urls: list[str] = field(default_factory=list)
    action_urls: list[str] = field(default_factory=list)  # POSTed: must change nothing of B's
    # Customer A roles whose scoped queryset includes A's row (a viewer sees only their own tokens).
    seen_by: frozenset[str] = frozenset({Role.CUSTOMER_VIEWER, Role.CUSTOMER_ADMIN})


# The steps of onboarding a customer (docs/operations.md): staff-only pages of one customer.
ONBOARDING_STEPS = [f"/customers/{{pk}}/onboard/{step}/" for step in ("site", "asset", "device", "invite")]

ISOLATION_CASES: dict[type[models.Model], Case] = {
    Customer: Case(
        make=lambda c: c,
        detail_urls=[
            "/customers/{pk}/",
            "/api/v1/customers/{pk}/",
            "/customers/{pk}/billing/",
            *ONBOARDING_STEPS,
        ],
        action_urls=["/customers/{pk}/billing/", *ONBOARDING_STEPS],
        list_urls=["/api/v1/customers/", "/", "/accounts/profile/"],
    ),
    User: Case(
        make=lambda c: UserFactory(customer=c, role=Role.CUSTOMER_VIEWER),
        detail_urls=["/users/{pk}/", "/api/v1/users/{pk}/"],
        action_urls=["/users/{pk}/active/", "/users/{pk}/role/"],
        list_urls=["/users/", "/api/v1/users/", "/users/?q=example"],
    ),
    AuditEntry: Case(
        make=lambda c: AuditEntryFactory(customer=c),
        list_urls=["/activity/", "/"],
    ),
    ApiToken: Case(
        make=lambda c: ApiToken.objects.get(
            prefix=_token_prefix(UserFactory(customer=c, role=Role.CUSTOMER_VIEWER))
        ),
        detail_urls=["/api/v1/tokens/{pk}/"],
        action_urls=["/api/v1/tokens/{pk}/revoke/"],
        list_urls=["/api/v1/tokens/"],
        seen_by=frozenset({Role.CUSTOMER_ADMIN}),
    ),
    apps.get_model("fleet", "Site"): Case(
        make=lambda c: SiteFactory(customer=c, name=f"Secret site of {c.name}"),
        detail_urls=["/sites/{pk}/", "/api/v1/sites/{pk}/"],
        list_urls=["/sites/", "/api/v1/sites/", "/"],
    ),
    apps.get_model("fleet", "Asset"): Case(
        make=lambda c: AssetFactory(site__customer=c, name=f"Secret machine of {c.name}"),
        detail_urls=[
            "/fleet/assets/{pk}/",
            "/api/v1/assets/{pk}/",
            "/api/v1/assets/{pk}/heartbeats/",
            "/api/v1/assets/{pk}/usage/?metric=run_hours",
        ],
        list_urls=["/api/v1/assets/", "/api/v1/assets/?q=Secret", "/fleet/", "/fleet/?q=Secret"],
        action_urls=["/fleet/assets/{pk}/devices/"],
    ),
    apps.get_model("fleet", "Device"): Case(
        make=lambda c: DeviceFactory(asset__site__customer=c),
        detail_urls=["/api/v1/devices/{pk}/"],
        list_urls=["/api/v1/devices/"],
        action_urls=[
            "/api/v1/devices/{pk}/revoke/",
            "/api/v1/devices/{pk}/rotate-token/",
            "/fleet/devices/{pk}/rotate/",
            "/fleet/devices/{pk}/revoke/",
        ],
    ),
    apps.get_model("fleet", "DeviceCredential"): Case(
        make=lambda c: DeviceCredentialFactory(device__asset__site__customer=c),
        detail_urls=["/api/v1/devices/{row.device_id}/"],
        list_urls=["/api/v1/devices/"],
    ),
    apps.get_model("fleet", "Heartbeat"): Case(
        make=lambda c: HeartbeatFactory(device__asset__site__customer=c),
        detail_urls=["/api/v1/assets/{row.asset_id}/heartbeats/"],
        list_urls=["/api/v1/assets/"],
    ),
    # Issue 15's tables: their pages and endpoints add their URLs here as they come.
    apps.get_model("fleet", "MaintenanceWindow"): Case(
        make=lambda c: _window(c),
        detail_urls=["/fleet/maintenance/{pk}/", "/api/v1/maintenance-windows/{pk}/"],
        action_urls=[
            "/fleet/maintenance/{pk}/move/",
            "/fleet/maintenance/{pk}/cancel/",
            "/fleet/maintenance/{pk}/close/",
            "/fleet/maintenance/{pk}/confirm/",
            "/api/v1/maintenance-windows/{pk}/cancel/",
            "/api/v1/maintenance-windows/{pk}/close-early/",
            "/api/v1/maintenance-windows/{pk}/confirm/",
        ],
        list_urls=["/fleet/maintenance/", "/api/v1/maintenance-windows/", "/fleet/"],
        seen_by=frozenset({Role.CUSTOMER_VIEWER, Role.CUSTOMER_ADMIN}),
    ),
    apps.get_model("fleet", "StatusExclusion"): Case(
        make=lambda c: _status_exclusion(c),
        detail_urls=["/api/v1/status-exclusions/{pk}/", "/fleet/assets/{row.asset_id}/"],
        list_urls=["/api/v1/status-exclusions/"],
        action_urls=["/fleet/exclusions/{pk}/remove/", "/fleet/assets/{row.asset_id}/exclusions/"],
        seen_by=frozenset({Role.CUSTOMER_VIEWER, Role.CUSTOMER_ADMIN}),
    ),
    apps.get_model("fleet", "AssetHealth"): Case(
        make=lambda c: _asset_health(c),
        detail_urls=["/api/v1/assets/{row.asset_id}/health/"],
        list_urls=[],
        seen_by=frozenset({Role.CUSTOMER_VIEWER, Role.CUSTOMER_ADMIN}),
    ),
    apps.get_model("fleet", "AssetThreshold"): Case(
        make=lambda c: _asset_threshold(c),
        detail_urls=[
            "/api/v1/assets/{row.asset_id}/thresholds/",
            "/api/v1/assets/{row.asset_id}/thresholds/{row.rule_id}/",
            "/fleet/assets/{row.asset_id}/thresholds/{row.rule_id}/",
            "/fleet/assets/{row.asset_id}/",
        ],
        action_urls=["/fleet/assets/{row.asset_id}/thresholds/{row.rule_id}/"],
        list_urls=[],  # per asset only: its detail URLs above
        seen_by=frozenset({Role.CUSTOMER_VIEWER, Role.CUSTOMER_ADMIN}),
    ),
    apps.get_model("fleet", "Alarm"): Case(
        make=lambda c: _alarm(c),
        detail_urls=["/api/v1/alarms/{pk}/"],
        action_urls=[
            "/api/v1/alarms/{pk}/acknowledge/",
            "/api/v1/alarms/{pk}/clear/",
            "/fleet/alarms/{pk}/acknowledge/",
            "/fleet/alarms/{pk}/clear/",
        ],
        list_urls=["/api/v1/alarms/", "/api/v1/alarms/?state=active", "/alarms/"],
    ),
    apps.get_model("fleet", "ImplausibleReading"): Case(
        make=lambda c: _implausible_reading(c),
        detail_urls=["/api/v1/implausible-readings/{pk}/", "/fleet/assets/{row.asset_id}/"],
        action_urls=[
            "/api/v1/implausible-readings/{pk}/accept/",
            "/api/v1/implausible-readings/{pk}/reject/",
            "/fleet/readings/{pk}/accept/",
            "/fleet/readings/{pk}/reject/",
        ],
        list_urls=["/api/v1/implausible-readings/", "/api/v1/implausible-readings/?status=pending"],
    ),
    apps.get_model("fleet", "AssetStatusChange"): Case(
        make=lambda c: _status_change(c),
        detail_urls=["/api/v1/assets/{row.asset_id}/status-history/"],
        list_urls=["/api/v1/assets/"],
    ),
    apps.get_model("fleet", "TelemetryRollup"): Case(
        make=lambda c: _rollup(c),
        detail_urls=["/api/v1/assets/{row.asset_id}/telemetry/?metric=temp_c&resolution=hour"],
        list_urls=["/api/v1/assets/"],
    ),
    # No page or API shows it (staff set it; docs/ingest.md, "Partitioned telemetry").
    apps.get_model("fleet", "TelemetryRetention"): Case(
        make=lambda c: apps.get_model("fleet", "TelemetryRetention").objects.create(
            customer=c, raw_days=400, minute_days=400
        ),
        list_urls=["/api/v1/assets/"],
    ),
    apps.get_model("fleet", "HourlyUsage"): Case(
        make=lambda c: HourlyUsageFactory(asset__site__customer=c),
        detail_urls=["/api/v1/assets/{row.asset_id}/usage/?metric=run_hours"],
        list_urls=["/api/v1/assets/"],
    ),
    apps.get_model("billing", "Contract"): Case(
        make=lambda c: _contract(c),
        detail_urls=[
            "/api/v1/contracts/{pk}/",
            "/api/v1/contracts/{pk}/usage/?period=2026-10",
            "/billing/contracts/{pk}/",
            "/billing/contracts/{pk}/?period=2026-10",
            "/api/v1/contracts/{pk}/price-overrides/",
            "/api/v1/contracts/{pk}/price-overrides/run_hours/",
            "/billing/contracts/{pk}/price-overrides/",
            "/billing/contracts/{pk}/availability/?period=2026-10",
            "/billing/contracts/{pk}/availability/pdf/?period=2026-10",
            "/api/v1/contracts/{pk}/availability/?period=2026-10",
        ],
        action_urls=[
            "/api/v1/contracts/{pk}/assets/",
            "/api/v1/contracts/{pk}/assets/remove/",
            "/api/v1/contracts/{pk}/price-overrides/",
            "/billing/contracts/{pk}/price-overrides/",
            "/billing/contracts/{pk}/price-overrides/run_hours/remove/",
        ],
        list_urls=["/api/v1/contracts/", "/api/v1/plans/", "/billing/contracts/", "/"],
    ),
    apps.get_model("billing", "Invoice"): Case(
        make=lambda c: _invoice(c),
        detail_urls=[
            "/api/v1/invoices/{pk}/",
            "/api/v1/invoices/{pk}/pdf/",
            "/api/v1/invoices/{pk}/xml/",
            "/api/v1/invoices/{pk}/credit-notes/",
            "/api/v1/invoices/{pk}/payments/",
            "/api/v1/invoices/{pk}/lines/{row.usage_line_id}/usage/",
            "/api/v1/invoices/{pk}/lines/{row.usage_line_id}/usage.csv",
            "/billing/invoices/{pk}/",
            "/support/disputes/{pk}/",
        ],
        action_urls=[
            "/api/v1/invoices/{pk}/finalize/",
            "/api/v1/invoices/{pk}/void/",
            "/api/v1/invoices/{pk}/mark-paid/",
            "/api/v1/invoices/{pk}/payments/",
            "/api/v1/invoices/{pk}/credit-notes/",
            "/api/v1/invoices/{pk}/dispute/",
            "/billing/invoices/{pk}/finalize/",
            "/billing/invoices/{pk}/credit-note/",
            "/billing/invoices/{pk}/payment/",
            "/support/disputes/{pk}/",
        ],
        list_urls=[
            "/billing/invoices/",
            "/billing/revenue/",
            "/api/v1/invoices/",
            "/api/v1/invoices/export.csv",
            "/api/v1/invoices/export.csv?period=2026-10",
            "/api/v1/invoices/?overdue=true",
            "/billing/overdue/",
        ],
    ),
    apps.get_model("billing", "CreditNote"): Case(
        make=lambda c: _credit_note(c),
        detail_urls=[
            "/api/v1/credit-notes/{pk}/",
            "/api/v1/credit-notes/{pk}/pdf/",
            "/api/v1/credit-notes/{pk}/xml/",
        ],
        list_urls=["/api/v1/credit-notes/", "/api/v1/invoices/"],
        seen_by=frozenset({Role.CUSTOMER_VIEWER, Role.CUSTOMER_ADMIN}),
    ),
    apps.get_model("billing", "Payment"): Case(
        make=lambda c: _payment(c),
        detail_urls=[
            "/api/v1/payments/{pk}/",
            "/api/v1/invoices/{row.invoice_id}/payments/",
            "/billing/invoices/{row.invoice_id}/",
        ],
        action_urls=[
            "/api/v1/invoices/{row.invoice_id}/payments/",
            "/billing/invoices/{row.invoice_id}/payment/",
        ],
        list_urls=[
            "/api/v1/payments/",
            "/api/v1/payments/?method=bank_transfer",
            "/api/v1/invoices/export.csv",
            "/billing/overdue/",
        ],
        seen_by=frozenset({Role.CUSTOMER_VIEWER, Role.CUSTOMER_ADMIN}),
    ),
    apps.get_model("support", "Ticket"): Case(
        make=lambda c: _ticket(c),
        detail_urls=[
            "/support/tickets/{pk}/",
            "/support/tickets/{pk}/?partial=timeline",
            "/api/v1/tickets/{pk}/",
        ],
        action_urls=[
            "/support/tickets/{pk}/comment/",
            "/support/tickets/{pk}/transition/",
            "/api/v1/tickets/{pk}/comments/",
            "/api/v1/tickets/{pk}/transition/",
            "/api/v1/tickets/{pk}/assign/",
            "/api/v1/tickets/{pk}/attachments/",
        ],
        list_urls=[
            "/support/tickets/",
            "/support/tickets/?partial=1",
            "/api/v1/tickets/",
            "/support/sla/",
            "/",
        ],
    ),
    apps.get_model("support", "TicketEvent"): Case(
        make=lambda c: _ticket(c).events.first(),
        detail_urls=["/api/v1/tickets/{row.ticket_id}/", "/support/tickets/{row.ticket_id}/"],
        list_urls=["/api/v1/tickets/", "/support/tickets/"],
    ),
    apps.get_model("support", "Attachment"): Case(
        make=lambda c: _attachment(c),
        detail_urls=["/api/v1/tickets/{row.ticket_id}/attachments/{pk}/"],
        list_urls=["/api/v1/tickets/"],
    ),
}


def _ticket(customer: Customer) -> Any:
    from support import services

    return services.ticket_open(
        actor=None, customer=customer, subject=f"Secret trouble of {customer.name}", description="It broke."
    )


def _attachment(customer: Customer) -> models.Model:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from support import services

    ticket = _ticket(customer)
    upload = SimpleUploadedFile(f"log-{customer.slug}.txt", b"pressure dropped at 10:02\n", "text/plain")
    return services.attachment_add(actor=UserFactory(role=Role.OPERATOR), ticket=ticket, upload=upload)


def _contract(customer: Customer) -> models.Model:
    from datetime import date
    from decimal import Decimal

    from billing import services
    from billing.models import Plan

    plan = Plan.objects.filter(code="iso").first() or services.plan_create(
        actor=None, code="iso", name="Isolation plan", currency="EUR", period_fee=Decimal("100")
    )
    asset: Any = AssetFactory(site__customer=customer, name=f"Covered machine of {customer.name}")
    contract = services.contract_create(
        actor=None, customer=customer, plan=plan, start_date=date(2026, 1, 1), assets=[asset]
    )
    _negotiated_price(contract)
    return contract


def _negotiated_price(contract: Any) -> Any:
    """A negotiated price for run_hours (a counter of the factory's asset model)."""
    from decimal import Decimal

    from billing.overrides import override_set

    return override_set(
        actor=None, contract=contract, metric="run_hours", charge_model="per_unit", unit_price=Decimal("0.3"),
        note=f"Secret deal of {contract.customer.name}",
    )  # fmt: skip


def _invoice(customer: Customer) -> models.Model:
    """A finalized invoice with a usage line (customers never see drafts)."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from billing import services
    from billing.invoicing import bill_period
    from billing.models import Invoice, PriceComponent

    contract: Any = _contract(customer)
    if not contract.plan.components.exists():
        PriceComponent.objects.create(
            plan=contract.plan, metric="run_hours", charge_model="per_unit", unit_price=Decimal("1")
        )
    bill_period("2026-10", now=datetime(2026, 11, 2, tzinfo=UTC))
    # The country EN 16931 asks of the buyer, so the e-invoice (xml/) answers 200 to staff.
    Customer.objects.filter(pk=customer.pk, country="").update(country="DE")
    invoice: Any = services.invoice_finalize(actor=None, invoice=Invoice.objects.get(contract=contract))
    invoice.usage_line_id = invoice.lines.get(kind="usage").pk
    return invoice


def _credit_note(customer: Customer) -> models.Model:
    from decimal import Decimal

    from billing import services

    return services.credit_note_create(
        actor=None, invoice=_invoice(customer), amount=Decimal("1"), reason=f"Goodwill for {customer.name}"
    )


def _payment(customer: Customer) -> models.Model:
    from decimal import Decimal

    from django.utils import timezone

    from billing.models import Payment

    invoice = _invoice(customer)
    return Payment.objects.create(
        customer_id=customer.pk, invoice=invoice, received_on=timezone.now().date(),
        amount=Decimal("1.00"), currency=invoice.currency, method="bank_transfer",
        reference=f"Transfer from {customer.name}",
    )  # fmt: skip


def _window(customer: Customer) -> models.Model:
    from datetime import timedelta

    from django.utils import timezone

    from fleet.models import MaintenanceWindow

    start = timezone.now() + timedelta(days=2)
    return MaintenanceWindow.objects.create(
        customer=customer, title=f"Service visit at {customer.name}", starts_at=start,
        ends_at=start + timedelta(hours=4),
    )  # fmt: skip


def _status_exclusion(customer: Customer) -> models.Model:
    from datetime import timedelta

    from django.utils import timezone

    from fleet.models import StatusExclusion

    asset = AssetFactory(site__customer=customer)
    end = timezone.now() - timedelta(days=1)
    return StatusExclusion.objects.create(
        customer=customer, asset=asset, starts_at=end - timedelta(hours=3), ends_at=end,
        reason=f"{customer.name} switched the machine off for a plant holiday",
    )  # fmt: skip


def _asset_health(customer: Customer) -> models.Model:
    from django.utils import timezone

    from fleet.models import AssetHealth

    asset = AssetFactory(site__customer=customer)
    return AssetHealth.objects.create(customer=customer, asset=asset, score=42, evaluated_at=timezone.now())


def _asset_threshold(customer: Customer) -> models.Model:
    from decimal import Decimal

    from fleet.models import AlarmRule, AssetThreshold

    asset = AssetFactory(site__customer=customer)
    rule = AlarmRule.objects.create(
        asset_model=asset.model, name="Too hot", metric="temp_c", comparison="gt", threshold=Decimal("90"),
    )  # fmt: skip
    return AssetThreshold.objects.create(customer=customer, asset=asset, rule=rule, threshold=Decimal("85"))


def _alarm(customer: Customer) -> models.Model:
    from django.utils import timezone

    from fleet.models import Alarm

    asset = AssetFactory(site__customer=customer)
    return Alarm.objects.create(
        customer=customer, asset=asset, kind="offline", key="offline", severity="critical",
        message=f"Secret alarm of {customer.name}", raised_at=timezone.now(),
    )  # fmt: skip


def _implausible_reading(customer: Customer) -> models.Model:
    from decimal import Decimal

    from fleet.models import ImplausibleReading

    heartbeat = HeartbeatFactory(device__asset__site__customer=customer, metrics={"run_hours": 9e14})
    return ImplausibleReading.objects.create(
        customer=customer, asset=heartbeat.asset, device=heartbeat.device, seq=heartbeat.seq,
        metric="run_hours", ts=heartbeat.ts, value=Decimal("900000000000000"),
        increment=Decimal("899999999999990"), allowed=Decimal("1.5"),
    )  # fmt: skip


def _status_change(customer: Customer) -> models.Model:
    from django.utils import timezone

    from fleet.models import AssetStatusChange

    asset = AssetFactory(site__customer=customer)
    return AssetStatusChange.objects.create(
        customer=customer, asset=asset, previous="online", status="offline", at=timezone.now()
    )


def _rollup(customer: Customer) -> models.Model:
    from django.utils import timezone

    from fleet.models import TelemetryRollup

    asset = AssetFactory(site__customer=customer)
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    return TelemetryRollup.objects.create(
        customer=customer, asset=asset, metric="temp_c", resolution="hour", bucket=hour,
        count=1, total=61.5, minimum=61.5, maximum=61.5,
    )  # fmt: skip


def _token_prefix(user: User) -> str:
    from portal.tokens import api_token_issue

    return api_token_issue(user=user).split("_")[1]


def _tenant_models() -> set[type[models.Model]]:
    found: set[type[models.Model]] = {Customer}
    for model in apps.get_models():
        if model._meta.app_label not in OUR_APPS:
            continue
        for f in model._meta.get_fields():
            if isinstance(f, models.ForeignKey) and f.related_model is Customer:
                found.add(model)
    return found


def test_every_tenant_model_is_covered() -> None:
    missing = {m.__name__ for m in _tenant_models()} - {m.__name__ for m in ISOLATION_CASES}
    assert not missing, f"add isolation cases for: {sorted(missing)}"


def test_every_tenant_model_but_the_tenant_itself_is_scoped() -> None:
    for model in _tenant_models() - {Customer}:
        manager: Any = model._default_manager
        assert hasattr(manager, "visible_to"), f"{model.__name__} has no visible_to()"
        assert hasattr(manager, "for_customer"), f"{model.__name__} has no for_customer()"


CUSTOMER_A_ROLES = [Role.CUSTOMER_VIEWER, Role.CUSTOMER_ADMIN]


def _identifying_texts(row: models.Model) -> list[str]:
    texts = [str(row.pk)] if len(str(row.pk)) >= 32 else []  # UUIDs; a small integer id is everywhere
    for attr in (
        "name",
        "email",
        "target_repr",
        "serial_number",
        "prefix",
        "message",
        "number",
        "reason",
        "subject",
    ):
        value = getattr(row, attr, "")
        if value:
            texts.append(str(value))
    return texts


@pytest.mark.parametrize("model", list(ISOLATION_CASES), ids=lambda m: m.__name__)
@pytest.mark.parametrize("role", CUSTOMER_A_ROLES, ids=str)
def test_customer_a_never_sees_customer_b(
    cast: dict[str, User], customer_a: Customer, customer_b: Customer, model: type[models.Model], role: Role
) -> None:
    case = ISOLATION_CASES[model]
    mine, theirs = case.make(customer_a), case.make(customer_b)
    user = cast[role]
    client = client_for(user)

    # Structure: the scoped queryset has A's row and not B's.
    visible = model._default_manager.visible_to(user)
    assert visible.filter(pk=mine.pk).exists() == (role in case.seen_by)
    assert not visible.filter(pk=theirs.pk).exists()

    # Details: B's ids answer 404 like missing ones (never 403, never 200).
    for template in case.detail_urls:
        response = client.get(template.format(pk=theirs.pk, row=theirs))
        assert response.status_code in (403, 404), template
        if response.status_code == 403:
            # Only when the role may not open that kind of page at all, A's own row included.
            assert client.get(template.format(pk=mine.pk, row=mine)).status_code == 403, template

    # Actions: refused (403 for the role, 404 for the row) and nothing of B's changes.
    for template in case.action_urls:
        before = model._default_manager.filter(pk=theirs.pk).values().get()
        response = client.post(
            template.format(pk=theirs.pk, row=theirs), {"active": "0", "role": "customer_admin"}
        )
        assert response.status_code in (403, 404), template
        assert model._default_manager.filter(pk=theirs.pk).values().get() == before, template

    # Lists: nothing of B's, by id or by name.
    for url in case.list_urls:
        response = client.get(url)
        if response.status_code == 403:
            continue
        assert response.status_code == 200, url
        raw = b"".join(response.streaming_content) if response.streaming else response.content
        body = raw.decode()
        for text in _identifying_texts(theirs):
            assert text not in body, f"{url} shows {text!r} of customer B"


@pytest.mark.parametrize("model", list(ISOLATION_CASES), ids=lambda m: m.__name__)
def test_staff_see_both_customers(
    operator: User, customer_a: Customer, customer_b: Customer, model: type[models.Model]
) -> None:
    case = ISOLATION_CASES[model]
    rows = [case.make(customer_a), case.make(customer_b)]
    visible = model._default_manager.visible_to(operator)
    assert visible.filter(pk__in=[r.pk for r in rows]).count() == 2
    for row in rows:
        for template in case.detail_urls:
            assert client_for(operator).get(template.format(pk=row.pk, row=row)).status_code == 200


def test_a_deactivated_customer_locks_out_its_users(viewer_a: User, customer_a: Customer) -> None:
    customer_a.is_active = False
    customer_a.save()
    client = client_for(viewer_a)
    assert client.get(f"/api/v1/customers/{customer_a.pk}/").status_code == 404
    assert client.get("/api/v1/sites/").json()["count"] == 0


def test_b_ids_in_request_bodies_are_unknown_to_a(admin_a: User, customer_b: Customer) -> None:
    """Inviting into another customer answers like a missing customer, and creates nothing."""
    response = client_for(admin_a).post(
        "/api/v1/users/",
        {"email": "sneaky@example.test", "role": "customer_viewer", "customer": str(customer_b.pk)},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "detail": "customer: Unknown customer.",
        "errors": [{"field": "customer", "message": "Unknown customer."}],
    }
    assert not User.objects.filter(email="sneaky@example.test").exists()


def test_a_customer_never_sees_another_customers_negotiated_prices(
    cast: dict[str, User], customer_a: Customer, customer_b: Customer
) -> None:
    from billing.overrides import overrides_visible_to

    mine, theirs = _contract(customer_a), _contract(customer_b)
    secret = f"Secret deal of {customer_b.name}"
    for role in CUSTOMER_A_ROLES:
        user = cast[role]
        client = client_for(user)
        assert list(overrides_visible_to(user).values_list("contract_id", flat=True)) == [mine.pk]
        for url in [
            f"/billing/contracts/{mine.pk}/",
            f"/api/v1/contracts/{mine.pk}/price-overrides/",
            "/api/v1/contracts/",
            "/api/v1/plans/",
            "/billing/contracts/",
            "/",
        ]:
            response = client.get(url)
            assert response.status_code == 200, url
            assert secret not in response.content.decode(), url
        assert (
            f"Secret deal of {customer_a.name}"
            in client.get(f"/billing/contracts/{mine.pk}/").content.decode()
        )
        for method in ("put", "patch", "delete"):
            response = getattr(client, method)(
                f"/api/v1/contracts/{theirs.pk}/price-overrides/run_hours/",
                {"charge_model": "per_unit", "unit_price": "0"},
                content_type="application/json",
            )
            assert response.status_code in (403, 404), method
    assert theirs.price_overrides.get().note == secret
