"""Reads of an asset's health for the asset page and the API; the asset comes in scoped."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fleet.models import ACTIVE_ALARM_STATES, Alarm, AlarmKind, Asset, AssetHealth, RiskLevel


@dataclass
class HealthView:
    asset_id: Any
    score: int = 100
    risk: str = RiskLevel.OK
    evaluated_at: datetime | None = None
    predictions: list[Alarm] = field(default_factory=list)  # active prediction and anomaly alarms
    rules: list[dict[str, Any]] = field(default_factory=list)  # per rule: the last evaluation

    @property
    def risk_label(self) -> str:
        return RiskLevel(self.risk).label

    @property
    def forecasts(self) -> list[dict[str, Any]]:
        """What the chart draws: per active trend rule its metric, limit and forecast line."""
        return [
            {"metric": r["metric"], "limit": r.get("limit"), "points": r["forecast"], "name": r["name"]}
            for r in self.rules
            if r.get("active") and r.get("forecast")
        ]


def asset_health(*, asset: Asset) -> HealthView:
    """The asset's last evaluation and its active predictions (two queries). An asset never
    evaluated reads as healthy with no `evaluated_at`."""
    view = HealthView(asset_id=asset.pk)
    health = AssetHealth.objects.for_customer(asset.customer_id).filter(asset=asset).first()
    if health is not None:
        view.score, view.risk, view.evaluated_at = health.score, health.risk, health.evaluated_at
        view.rules = sorted(health.detail.values(), key=lambda r: (not r.get("active"), r.get("name", "")))
    view.predictions = list(
        Alarm.objects.for_customer(asset.customer_id)
        .filter(
            asset=asset,
            kind__in=[AlarmKind.PREDICTION, AlarmKind.ANOMALY],
            state__in=ACTIVE_ALARM_STATES,
        )
        .select_related("health_rule")
        .order_by("expected_at", "-raised_at")
    )
    return view
