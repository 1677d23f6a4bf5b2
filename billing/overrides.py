"""Negotiated prices: a contract's own price for one meter, in place of its plan's component
(docs/billing.md, "Negotiated prices").

`Contract.pricing()` puts the overrides in place, so the next invoice run rates them and the
invoice line names them with the override's note. Finalized invoices keep their snapshot.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet

from billing.models import Contract, ContractPriceOverride
from billing.plans import check_counter_metric
from portal.models import User
from portal.services import audit_record

# The price terms an override may set (besides the metric it prices).
TERMS = (
    "label", "unit", "charge_model", "unit_price", "included_units", "package_size", "package_price", "tiers",
    "note",
)  # fmt: skip


def overrides_visible_to(user: Any) -> QuerySet[ContractPriceOverride]:
    """The overrides of the contracts `user` may see (a customer: its own contracts' only)."""
    return ContractPriceOverride.objects.filter(contract__in=Contract.objects.visible_to(user))


@transaction.atomic
def override_set(
    *,
    actor: User | None,
    contract: Contract,
    metric: str,
    charge_model: str,
    label: str = "",
    unit: str = "",
    unit_price: Decimal = Decimal("0"),
    included_units: Decimal = Decimal("0"),
    package_size: Decimal | None = None,
    package_price: Decimal = Decimal("0"),
    tiers: list[dict[str, Any]] | None = None,
    note: str = "",
) -> ContractPriceOverride:
    """Set the contract's price for `metric`, replacing an override it had for it. Validated as a
    plan's component is; the metric must be a counter metric. Drafts re-rate on the next run."""
    check_counter_metric(metric, field="metric")
    contract = Contract.objects.select_for_update().get(pk=contract.pk)  # one writer per contract
    override = contract.price_overrides.filter(metric=metric).first() or ContractPriceOverride(
        contract=contract, metric=metric
    )
    replaced = override.pk is not None
    values = {
        "label": label, "unit": unit, "charge_model": charge_model, "unit_price": unit_price,
        "included_units": included_units, "package_size": package_size, "package_price": package_price,
        "tiers": tiers or [], "note": note.strip(),
    }  # fmt: skip
    for field, value in values.items():
        setattr(override, field, value)
    override.full_clean(exclude=["contract"], validate_unique=False)
    override.save()
    audit_record(
        actor=actor, action="contract.price_override_set", target=contract,
        data={"metric": metric, "charge_model": charge_model, "replaced": replaced, "note": override.note},
    )  # fmt: skip
    return override


@transaction.atomic
def override_remove(*, actor: User | None, contract: Contract, metric: str) -> None:
    """Bill `metric` at the plan's price again (from the next run on)."""
    deleted, _ = contract.price_overrides.filter(metric=metric).delete()
    if not deleted:
        raise ValidationError({"metric": f"This contract has no negotiated price for {metric!r}."})
    audit_record(
        actor=actor, action="contract.price_override_removed", target=contract, data={"metric": metric}
    )
