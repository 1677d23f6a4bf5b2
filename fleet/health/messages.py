"""What a prediction or an anomaly alarm says, in words a customer reads (docs/health.md)."""

from __future__ import annotations

from decimal import Decimal

from fleet.health import rules as core
from fleet.models import HealthRule


def _number(value: Decimal | float) -> str:
    return f"{float(value):,.2f}".rstrip("0").rstrip(".")


def _hours_text(hours: float) -> str:
    if hours < 1:
        return "within the hour"
    if hours < 48:
        return f"in ~{round(hours)} h"
    return f"in ~{round(hours / 24)} days"


def trend_message(rule: HealthRule, label: str, unit: str, hours_to: float) -> str:
    verb = "exceed" if rule.comparison in ("gt", "gte") else "fall below"
    limit = f"{_number(rule.limit or 0)} {unit}".strip()
    if hours_to <= 0:
        return f"{label} is past {limit} and still heading that way"
    return f"{label} predicted to {verb} {limit} {_hours_text(hours_to)}"


def anomaly_message(label: str, unit: str, verdict: core.AnomalyVerdict) -> str:
    what = "spread" if verdict.z_spread > verdict.z_level else "level"
    if what == "level":
        return (
            f"{label} unlike its normal: {_number(verdict.recent)} {unit} against a usual "
            f"{_number(verdict.baseline)} {unit}"
        ).replace("  ", " ")
    return f"{label} fluctuates unlike its normal ({verdict.z_spread:.1f}× its usual spread)"
