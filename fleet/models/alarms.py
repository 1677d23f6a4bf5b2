"""Alarm rules of an asset model and the alarms they raise."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models

from fleet.models.assets import (
    Asset,
    AssetModel,
)
from portal.priority import PRIORITIES
from portal.tenancy import TenantOwned


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class Comparison(models.TextChoices):
    GT = "gt", ">"
    GTE = "gte", "≥"
    LT = "lt", "<"
    LTE = "lte", "≤"


class AlarmRule(models.Model):
    """A threshold on a metric of an asset model, held for a while before it raises."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    asset_model = models.ForeignKey(AssetModel, on_delete=models.CASCADE, related_name="alarm_rules")
    name = models.CharField(max_length=120)
    metric = models.SlugField(max_length=60)
    comparison = models.CharField(max_length=3, choices=Comparison.choices)
    threshold = models.DecimalField(max_digits=20, decimal_places=6)
    for_seconds = models.PositiveIntegerField(default=0, help_text="How long the condition must hold.")
    severity = models.CharField(max_length=10, choices=Severity.choices, default=Severity.WARNING)
    is_active = models.BooleanField(default=True)
    ticket_priority = models.CharField(
        max_length=2,
        blank=True,
        choices=[(p, p) for p in PRIORITIES],
        help_text="When set, raising this alarm opens a support ticket with this priority.",
    )

    class Meta:
        ordering = ["asset_model", "name"]

    def __str__(self) -> str:
        return f"{self.name}: {self.metric} {self.get_comparison_display()} {self.threshold}"

    def holds(self, value: Decimal) -> bool:
        return {
            Comparison.GT: value > self.threshold,
            Comparison.GTE: value >= self.threshold,
            Comparison.LT: value < self.threshold,
            Comparison.LTE: value <= self.threshold,
        }[Comparison(self.comparison)]


class AlarmKind(models.TextChoices):
    THRESHOLD = "threshold", "Threshold"
    DEVICE_FAULT = "device_fault", "Device fault"
    OFFLINE = "offline", "Offline"
    DATA_QUALITY = "data_quality", "Data quality"
    PREDICTION = "prediction", "Prediction"  # a health rule's trend: a limit crossed ahead
    ANOMALY = "anomaly", "Anomaly"  # a health rule's anomaly: unlike the asset's own normal


class AlarmState(models.TextChoices):
    RAISED = "raised", "Raised"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    CLEARED = "cleared", "Cleared"


ACTIVE_ALARM_STATES = (AlarmState.RAISED, AlarmState.ACKNOWLEDGED)


class Alarm(TenantOwned):
    """raised → acknowledged → cleared; at most one active alarm per asset and rule (or kind)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="alarms")
    rule = models.ForeignKey(
        AlarmRule, null=True, blank=True, on_delete=models.SET_NULL, related_name="alarms"
    )
    kind = models.CharField(max_length=20, choices=AlarmKind.choices)
    # "rule:<id>", "device_fault" or "offline": what "one active alarm per asset" is keyed on.
    key = models.CharField(max_length=64)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    state = models.CharField(max_length=20, choices=AlarmState.choices, default=AlarmState.RAISED)
    message = models.CharField(max_length=300)
    value = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    # Predictions: the health rule behind it and when the limit is expected to be crossed.
    health_rule = models.ForeignKey(
        "fleet.HealthRule", null=True, blank=True, on_delete=models.SET_NULL, related_name="alarms"
    )
    expected_at = models.DateTimeField(null=True, blank=True)
    # Raised inside a maintenance window: recorded, but no ticket and no notification.
    in_maintenance = models.BooleanField(default=False)
    raised_at = models.DateTimeField()
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        "portal.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_by = models.ForeignKey(
        "portal.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cleared_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-raised_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["asset", "key"],
                condition=models.Q(state__in=["raised", "acknowledged"]),
                name="one_active_alarm_per_asset_and_key",
            ),
        ]
        indexes = [models.Index(fields=["customer", "state", "-raised_at"], name="alarm_customer_state")]

    def __str__(self) -> str:
        return f"{self.get_severity_display()}: {self.message}"

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_ALARM_STATES
