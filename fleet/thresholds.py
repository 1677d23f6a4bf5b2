"""Thresholds the customer owns: a customer admin tightens an asset model's alarm rule for one of
its own assets, never loosening it (docs/ingest.md, "Thresholds the customer owns").

A pure core (`tighter_or_equal`, `effective`, `holds`: Decimal in, no database), the two writes
(`threshold_set`, `threshold_clear`: atomic, audited with the old and the new value) and the
reads (`threshold_rule_get`, `threshold_rows`), scoped through the asset the caller already
reached through `visible_to`.

The ingest worker keeps the thresholds per process with the asset models' rules
(`fleet.ingest.state.ModelRules`): a save or delete here clears that copy in this process
(signals, fleet/apps.py) and every other process sees it within the copy's TTL (2 s).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction

from fleet.models import AlarmRule, Asset, AssetThreshold, Comparison, MetricDefinition
from portal.models import User
from portal.services import audit_record

# AssetThreshold.threshold: DecimalField(max_digits=20, decimal_places=6).
MAX_DIGITS, DECIMAL_PLACES = 20, 6
UPPER = frozenset({Comparison.GT, Comparison.GTE})  # alarm above the threshold: lower is tighter


class ThresholdError(Exception):
    """A threshold a customer may not set (a field error on `threshold`: 400 / the form)."""


# ---------------------------------------------------------------------------------- pure core


def tighter_or_equal(comparison: str, model: Decimal, customer: Decimal) -> bool:
    """Whether `customer` alarms no later than `model` does: ≤ for `gt`/`gte`, ≥ for `lt`/`lte`."""
    return customer <= model if comparison in UPPER else customer >= model


def effective(comparison: str, model: Decimal, customer: Decimal | None) -> Decimal:
    """The threshold that applies: the tighter of the two. A customer's value that a later
    change of the model's rule made looser than the rule is not used (the rule wins)."""
    if customer is None:
        return model
    return min(model, customer) if comparison in UPPER else max(model, customer)


def holds(comparison: str, threshold: Decimal, value: Decimal) -> bool:
    """`AlarmRule.holds` against another threshold."""
    if comparison == Comparison.GT:
        return value > threshold
    if comparison == Comparison.GTE:
        return value >= threshold
    if comparison == Comparison.LT:
        return value < threshold
    return value <= threshold


def check(*, rule: AlarmRule, threshold: Any) -> Decimal:
    """The customer's `threshold` as a Decimal the column stores, or ThresholdError."""
    try:
        value = threshold if isinstance(threshold, Decimal) else Decimal(str(threshold).strip())
    except (InvalidOperation, ValueError) as exc:
        raise ThresholdError("Enter a number.") from exc
    if not value.is_finite():
        raise ThresholdError("Enter a finite number.")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite
    if -exponent > DECIMAL_PLACES:
        raise ThresholdError(f"Use at most {DECIMAL_PLACES} decimal places.")
    if value.adjusted() >= MAX_DIGITS - DECIMAL_PLACES:
        raise ThresholdError(f"Use at most {MAX_DIGITS - DECIMAL_PLACES} digits before the decimal point.")
    if not tighter_or_equal(rule.comparison, rule.threshold, value):
        limit = _plain(rule.threshold)
        if rule.comparison in UPPER:
            raise ThresholdError(f"The model allows at most {limit}: a threshold may only be tightened.")
        raise ThresholdError(f"The model allows at least {limit}: a threshold may only be tightened.")
    return value


def _plain(value: Decimal | None) -> str | None:
    """A Decimal without trailing zeros and never in exponent form (for audit entries, messages)."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


# ---------------------------------------------------------------------------------- writes


@transaction.atomic
def threshold_set(*, asset: Asset, rule: AlarmRule, threshold: Any, actor: User | None) -> AssetThreshold:
    """Set the asset's own threshold for `rule` (an active rule of its model: `threshold_rule_get`).

    Tighter than or equal to the rule's, else ThresholdError. Setting the value it has already
    changes nothing and records nothing. The row is locked (or its insert serialised by the
    unique constraint) so two admins at once leave one row and two honest audit entries.
    """
    if rule.asset_model_id != asset.model_id:
        raise AlarmRule.DoesNotExist  # callers fetched it through the asset: a bug, not a 400
    value = check(rule=rule, threshold=threshold)
    row, created = AssetThreshold.objects.select_for_update().get_or_create(
        customer_id=asset.customer_id,
        asset=asset,
        rule=rule,
        defaults={"threshold": value, "set_by": actor},
    )
    old = None if created else row.threshold
    if old is not None:
        if old == value:
            return row
        row.threshold, row.set_by = value, actor
        row.save(update_fields=["threshold", "set_by", "updated_at"])
    audit_record(
        actor=actor,
        action="threshold.set",
        target=asset,
        data={
            "rule": str(rule.pk), "metric": rule.metric, "comparison": rule.comparison,
            "model": _plain(rule.threshold), "old": _plain(old), "new": _plain(value),
        },
    )  # fmt: skip
    return row


@transaction.atomic
def threshold_clear(*, asset: Asset, rule: AlarmRule, actor: User | None) -> bool:
    """Back to the model's threshold. True when there was one to clear (idempotent)."""
    row = (
        AssetThreshold.objects.for_customer(asset.customer_id)
        .select_for_update()
        .filter(asset=asset, rule=rule)
        .first()
    )
    if row is None:
        return False
    old = row.threshold
    row.delete()
    audit_record(
        actor=actor,
        action="threshold.cleared",
        target=asset,
        data={
            "rule": str(rule.pk), "metric": rule.metric, "comparison": rule.comparison,
            "model": _plain(rule.threshold), "old": _plain(old), "new": None,
        },
    )  # fmt: skip
    return True


# ---------------------------------------------------------------------------------- reads


def threshold_rule_get(*, asset: Asset, rule_id: Any) -> AlarmRule:
    """An active rule of the asset's model, or AlarmRule.DoesNotExist (a 404, like a foreign id).

    `asset` was reached through the user's scope; the rule is the asset model's, so scoping the
    asset scopes it."""
    return AlarmRule.objects.get(pk=rule_id, asset_model_id=asset.model_id, is_active=True)


@dataclass(frozen=True)
class ThresholdRow:
    """One alarm rule as it applies to one asset."""

    rule: AlarmRule
    unit: str
    model_threshold: Decimal
    customer_threshold: Decimal | None
    effective_threshold: Decimal
    set_by: str | None
    updated_at: datetime | None

    @property
    def rule_id(self) -> Any:
        return self.rule.pk

    @property
    def tightened(self) -> bool:
        return self.customer_threshold is not None and self.effective_threshold != self.model_threshold


def threshold_rows(*, asset: Asset, rule_id: Any = None) -> list[ThresholdRow]:
    """The active rules of the asset's model with the asset's own thresholds: three queries."""
    rules = AlarmRule.objects.filter(asset_model_id=asset.model_id, is_active=True).order_by("name", "pk")
    if rule_id is not None:
        rules = rules.filter(pk=rule_id)
    units = dict(
        MetricDefinition.objects.filter(asset_model_id=asset.model_id).order_by().values_list("code", "unit")
    )
    own = {
        row.rule_id: row
        for row in AssetThreshold.objects.for_customer(asset.customer_id)
        .filter(asset=asset)
        .select_related("set_by")
    }
    rows = []
    for rule in rules:
        mine = own.get(rule.pk)
        customer = mine.threshold if mine is not None else None
        rows.append(
            ThresholdRow(
                rule=rule,
                unit=units.get(rule.metric, ""),
                model_threshold=rule.threshold,
                customer_threshold=customer,
                effective_threshold=effective(rule.comparison, rule.threshold, customer),
                set_by=mine.set_by.email if mine is not None and mine.set_by is not None else None,
                updated_at=mine.updated_at if mine is not None else None,
            )
        )
    return rows
