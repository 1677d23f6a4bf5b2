"""Writes of plans: create, change, and the versions a change makes (docs/billing.md, "Plans and
their versions").

A plan's prices are never changed under an invoice that was finalized with them: when the
current version was billed on a finalized or paid invoice, a price change keeps the old prices as
a `PlanRevision` and raises `Plan.version`. Drafts pick up the new version on the next run (the
run rates `contract.pricing()`); finalized invoices keep their own snapshot. A change that leaves
the prices alone (name, description, offered or not) keeps the version.

`billing.services.plan_create` and `plan_update` are these functions.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from billing.models import Invoice, InvoiceStatus, Plan, PlanRevision, PriceComponent
from billing.money import as_decimal
from fleet.models import MetricDefinition
from portal.models import User
from portal.services import audit_record

# What a plan may be changed in (the services' keyword arguments besides `components`).
PLAN_FIELDS = ("code", "name", "description", "currency", "period_fee", "minimum_commitment", "is_active")


def counter_metrics() -> dict[str, MetricDefinition]:
    """The counter metrics a price can be set for, by code (the first asset model's wording of a
    code shared by several models)."""
    metrics: dict[str, MetricDefinition] = {}
    for metric in MetricDefinition.objects.filter(kind="counter").order_by("code", "asset_model__name"):
        metrics.setdefault(metric.code, metric)
    return metrics


def check_counter_metric(metric: str, *, field: str, counters: set[str] | None = None) -> None:
    if metric not in (counters if counters is not None else set(counter_metrics())):
        raise ValidationError({field: f"{metric!r} is not a counter metric of any asset model."})


def _set_components(plan: Plan, components: list[dict[str, Any]]) -> None:
    counters = set(counter_metrics())
    seen: set[str] = set()
    for spec in components:
        metric = spec.get("metric", "")
        check_counter_metric(metric, field="components", counters=counters)
        if metric in seen:
            raise ValidationError({"components": f"{metric!r} is priced twice."})
        seen.add(metric)
        component = PriceComponent(plan=plan, **spec)
        component.full_clean(exclude=["plan"])
        component.save()


def plan_billed(plan: Plan) -> bool:
    """True when a finalized or paid invoice was rated with the plan's current version."""
    return Invoice.objects.filter(
        status__in=[InvoiceStatus.FINALIZED, InvoiceStatus.PAID],
        pricing__plan=plan.code,
        pricing__plan_version=plan.version,
    ).exists()


def _prices(plan: Plan) -> dict[str, Any]:
    """The plan's pricing as an invoice snapshots it, read afresh from the database."""
    fresh = Plan.objects.prefetch_related("components").get(pk=plan.pk)
    return fresh.pricing().to_json()


@transaction.atomic
def plan_create(
    *,
    actor: User | None,
    code: str,
    name: str,
    currency: str,
    period_fee: Decimal,
    minimum_commitment: Decimal | None = None,
    description: str = "",
    is_active: bool = True,
    components: list[dict[str, Any]] | None = None,
) -> Plan:
    plan = Plan(
        code=code,
        name=name,
        currency=currency,
        period_fee=as_decimal(period_fee),
        minimum_commitment=None if minimum_commitment is None else as_decimal(minimum_commitment),
        description=description,
        is_active=is_active,
    )
    plan.full_clean()
    plan.save()
    _set_components(plan, components or [])
    audit_record(actor=actor, action="plan.created", target=plan, data={"version": plan.version})
    return plan


@transaction.atomic
def plan_update(
    *, actor: User | None, plan: Plan, components: list[dict[str, Any]] | None = None, **changes: Any
) -> Plan:
    """Change a plan; `components`, when given, replaces them all.

    Locks the plan row, so two editors raise the version once each, in turn. When the prices
    change and the current version was billed on a finalized or paid invoice, the old prices are
    kept as `PlanRevision(version)` and the version goes up; otherwise the plan is changed in
    place. Nothing is written when a rule is broken (ValidationError)."""
    unknown = sorted(set(changes) - set(PLAN_FIELDS))
    if unknown:
        raise TypeError(f"plan_update() got unexpected fields {unknown}")
    plan = Plan.objects.select_for_update().get(pk=plan.pk)
    if "currency" in changes and changes["currency"] != plan.currency and plan.contracts.exists():
        raise ValidationError(
            {"currency": "Contracts bill in this plan's currency; make a new plan instead."}
        )
    billed = plan_billed(plan)
    if "code" in changes and changes["code"] != plan.code and billed:
        # Invoices name the plan by its code: a billed version keeps it, so its history stays found.
        raise ValidationError({"code": "Invoices were finalized with this code; it cannot change."})
    before, old_version = _prices(plan), plan.version
    for field, value in changes.items():
        setattr(plan, field, value)
    plan.full_clean()
    plan.save()
    if components is not None:
        plan.components.all().delete()
        _set_components(plan, components)
    after = _prices(plan)
    repriced = {**before, "plan": ""} != {**after, "plan": ""}
    if repriced and billed:
        PlanRevision.objects.create(plan=plan, version=old_version, pricing=before, replaced_by=actor)
        plan.version = old_version + 1
        plan.save(update_fields=["version", "updated_at"])
    plan.refresh_from_db()
    audit_record(
        actor=actor, action="plan.updated", target=plan,
        data={"fields": sorted({*changes, *(["components"] if components is not None else [])}),
              "repriced": repriced, "version": plan.version, "new_version": plan.version != old_version},
    )  # fmt: skip
    return plan
