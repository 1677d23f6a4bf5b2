"""Predictive maintenance: health rules per asset model over the stored rollups, each asset's
health, and the thresholds a customer tightened for its own assets (docs/health.md)."""

from __future__ import annotations

import uuid

from django.db import models

from fleet.models.alarms import AlarmRule, Comparison, Severity
from fleet.models.assets import Asset, AssetModel
from portal.priority import PRIORITIES
from portal.tenancy import TenantOwned


class HealthRuleKind(models.TextChoices):
    TREND = "trend", "Trend"  # where a gauge is heading, and when it crosses its limit
    ANOMALY = "anomaly", "Anomaly"  # a reading pattern unlike the asset's own recent normal


class HealthRule(models.Model):
    """A prediction rule on a gauge metric of an asset model, evaluated on a schedule."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    asset_model = models.ForeignKey(AssetModel, on_delete=models.CASCADE, related_name="health_rules")
    name = models.CharField(max_length=120)
    metric = models.SlugField(max_length=60)
    kind = models.CharField(max_length=10, choices=HealthRuleKind.choices)
    comparison = models.CharField(
        max_length=3, choices=Comparison.choices, default=Comparison.GT, help_text="Trend: the bad side."
    )
    limit = models.DecimalField(
        max_digits=20,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Trend: the value it must not cross.",
    )
    horizon_hours = models.PositiveIntegerField(default=48, help_text="Trend: warn this far ahead.")
    lookback_hours = models.PositiveIntegerField(default=72, help_text="How much history a rule reads.")
    sensitivity = models.DecimalField(
        max_digits=8, decimal_places=4, default=3, help_text="Anomaly: how unusual counts as unlike normal."
    )
    params = models.JSONField(default=dict, blank=True)
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    ticket_priority = models.CharField(
        max_length=2, blank=True, choices=[(p, p) for p in PRIORITIES], default="P3",
        help_text="A prediction opens a proactive maintenance ticket with this priority (empty: none).",
    )  # fmt: skip
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["asset_model", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind} on {self.metric})"


class RiskLevel(models.TextChoices):
    OK = "ok", "Healthy"
    WATCH = "watch", "Watch"
    AT_RISK = "at_risk", "At risk"
    CRITICAL = "critical", "Critical"


class AssetHealth(TenantOwned):
    """The last evaluation of an asset's health rules: a score (100 = nothing predicted), a risk
    level the fleet overview sorts by, and per rule the forecast the asset page draws."""

    asset = models.OneToOneField(Asset, on_delete=models.CASCADE, primary_key=True, related_name="health")
    score = models.PositiveSmallIntegerField(default=100)
    risk = models.CharField(max_length=10, choices=RiskLevel.choices, default=RiskLevel.OK)
    evaluated_at = models.DateTimeField()
    # {rule id: {"metric", "kind", "expected_at", "forecast": [[iso time, value], ...], ...}}
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-score"]
        indexes = [models.Index(fields=["customer", "score"], name="health_customer_score")]

    def __str__(self) -> str:
        return f"{self.asset_id} {self.score} {self.risk}"


class AssetThreshold(TenantOwned):
    """A customer's own, tighter threshold for one alarm rule on one of its assets: never looser
    than the asset model's rule allows."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="thresholds")
    rule = models.ForeignKey(AlarmRule, on_delete=models.CASCADE, related_name="asset_thresholds")
    threshold = models.DecimalField(max_digits=20, decimal_places=6)
    set_by = models.ForeignKey(
        "portal.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["asset", "rule"]
        constraints = [models.UniqueConstraint(fields=["asset", "rule"], name="one_threshold_per_asset_rule")]

    def __str__(self) -> str:
        return f"{self.asset_id} {self.rule_id} {self.threshold}"
