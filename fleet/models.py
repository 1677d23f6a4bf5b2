"""The fleet: sites, the asset catalogue and its metrics, assets, devices, heartbeats, usage.

Tenant-owned rows carry `customer` (children too) so every query and index can lead with it.
The asset catalogue (`AssetModel`, `MetricDefinition`) is the provider's and shared.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from portal.models import validate_time_zone
from portal.priority import PRIORITIES
from portal.tenancy import CatalogueQuerySet, TenantOwned


class Site(TenantOwned):
    """A place of a customer's where rented equipment runs (a plant, a warehouse)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    address = models.TextField(blank=True)
    time_zone = models.CharField(
        max_length=64, blank=True, validators=[validate_time_zone], help_text="Empty: the customer's."
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "name"], name="site_name_unique_per_customer")
        ]

    def __str__(self) -> str:
        return self.name


class AssetModel(models.Model):
    """A kind of machine the provider rents out (a compressor line), with what it reports."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=200)
    manufacturer = models.CharField(max_length=200, blank=True)
    heartbeat_interval_seconds = models.PositiveIntegerField(
        default=60, help_text="How often a device reports; offline after 3 times this without a heartbeat."
    )
    description = models.TextField(blank=True)

    objects = CatalogueQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MetricKind(models.TextChoices):
    GAUGE = "gauge", "Gauge (instant value)"
    COUNTER = "counter", "Counter (cumulative)"


class MetricDefinition(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    asset_model = models.ForeignKey(AssetModel, on_delete=models.CASCADE, related_name="metrics")
    code = models.SlugField(max_length=60, help_text="The key in a heartbeat's `metrics`, e.g. run_hours.")
    label = models.CharField(max_length=120)
    unit = models.CharField(max_length=30, blank=True)
    kind = models.CharField(max_length=10, choices=MetricKind.choices, default=MetricKind.GAUGE)
    normal_min = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    normal_max = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    max_rate_per_hour = models.DecimalField(
        max_digits=20,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0.000001"))],
        help_text=(
            "Counters only: the most the counter can rise per hour of its readings' time. A reading "
            "beyond it is flagged and billed only when staff accept it. Empty: no bound."
        ),
    )

    class Meta:
        ordering = ["asset_model", "code"]
        constraints = [
            models.UniqueConstraint(fields=["asset_model", "code"], name="metric_code_unique_per_model")
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.code})"

    def clean(self) -> None:
        super().clean()
        if self.max_rate_per_hour is not None and self.kind != MetricKind.COUNTER:
            raise ValidationError({"max_rate_per_hour": "Only a counter has a rate bound."})


class AssetStatus(models.TextChoices):
    NEVER_SEEN = "never_seen", "Never seen"
    ONLINE = "online", "Online"
    WARNING = "warning", "Warning"
    FAULT = "fault", "Fault"
    OFFLINE = "offline", "Offline"
    DECOMMISSIONED = "decommissioned", "Decommissioned"


class Asset(TenantOwned):
    """One rented machine at a customer's site."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="assets")
    model = models.ForeignKey(AssetModel, on_delete=models.PROTECT, related_name="assets")
    serial_number = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=200)
    commissioned_on = models.DateField(null=True, blank=True)
    decommissioned_at = models.DateTimeField(null=True, blank=True)
    # Derived from heartbeats by the ingest worker and the offline sweep; never edited by hand.
    status = models.CharField(max_length=20, choices=AssetStatus.choices, default=AssetStatus.NEVER_SEEN)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    last_values = models.JSONField(default=dict, blank=True)
    last_fault_code = models.CharField(max_length=64, blank=True)
    # Per alarm rule id, when its condition started to hold (ISO time): the "for how long".
    rule_state = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["customer", "status"], name="asset_customer_status"),
            models.Index(fields=["customer", "site"], name="asset_customer_site"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.serial_number})"

    def clean(self) -> None:
        super().clean()
        if self.site_id and self.customer_id and self.site.customer_id != self.customer_id:
            raise ValidationError({"site": "The site belongs to another customer."})


class Device(TenantOwned):
    """The connectivity module on an asset. A swap installs a new device on the same asset."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="devices")
    serial_number = models.CharField(max_length=100, unique=True)
    firmware = models.CharField(max_length=60, blank=True)
    is_active = models.BooleanField(default=True, help_text="The asset's current device.")
    installed_at = models.DateTimeField(default=timezone.now)
    removed_at = models.DateTimeField(null=True, blank=True)
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Ingest requests a minute; empty: the site-wide default."
    )
    # Kept by the ingest worker: the newest heartbeat and, per counter metric, its newest
    # reading [seq, value], so in-order heartbeats fold into usage without reading history.
    last_seq = models.BigIntegerField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    counter_state = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["asset", "-installed_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["asset"], condition=models.Q(is_active=True), name="one_active_device_per_asset"
            ),
        ]

    def __str__(self) -> str:
        return self.serial_number


class DeviceCredential(TenantOwned):
    """A device token, stored as its SHA-256 with a short public prefix for lookup.

    Tokens are 256-bit random secrets, so a fast hash is enough (no dictionary to attack);
    the token itself is shown once and never stored.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="credentials")
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Set on rotation: the overlap's end.")
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}…"

    def is_valid_at(self, now: datetime) -> bool:
        return credential_valid_at(self.revoked_at, self.expires_at, now)


def credential_valid_at(revoked_at: datetime | None, expires_at: datetime | None, now: datetime) -> bool:
    """A credential's validity from its columns (the lean ingest path reads them without a model)."""
    return revoked_at is None and (expires_at is None or expires_at > now)


class HeartbeatStatus(models.TextChoices):
    OK = "ok", "OK"
    WARNING = "warning", "Warning"
    FAULT = "fault", "Fault"


class Heartbeat(TenantOwned):
    """One report of a device, stored once per (device, seq).

    Every index costs each stored heartbeat an insert: `customer` and `device` have no index
    of their own, the composite indexes below lead with them."""

    id = models.BigAutoField(primary_key=True)
    customer = models.ForeignKey(
        "portal.Customer", on_delete=models.PROTECT, related_name="heartbeats", db_index=False
    )
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="heartbeats")
    device = models.ForeignKey(Device, on_delete=models.PROTECT, related_name="heartbeats", db_index=False)
    seq = models.BigIntegerField()
    ts = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=10, choices=HeartbeatStatus.choices)
    fault_code = models.CharField(max_length=64, blank=True)
    metrics = models.JSONField(default=dict)
    # Per counter metric, the usage this reading adds (decimal strings); see fleet/usage.py.
    increments = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["asset", "-ts"]
        constraints = [
            models.UniqueConstraint(fields=["device", "seq"], name="heartbeat_once_per_device_seq")
        ]
        indexes = [
            models.Index(fields=["customer", "asset", "-ts"], name="heartbeat_asset_time"),
            models.Index(fields=["received_at"], name="heartbeat_received"),
        ]

    def __str__(self) -> str:
        return f"{self.device_id}#{self.seq}"


class HourlyUsage(TenantOwned):
    """Usage of one counter metric of one asset in one UTC hour: what invoices read.

    The ingest worker updates the current hour's rows with every heartbeat, and `quantity` is
    in billing's covering index, so each update writes every index: `customer` and `asset`
    have none of their own (the composite indexes lead with them)."""

    id = models.BigAutoField(primary_key=True)
    customer = models.ForeignKey(
        "portal.Customer", on_delete=models.PROTECT, related_name="hourlyusages", db_index=False
    )
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="hourly_usage", db_index=False)
    metric = models.CharField(max_length=60)
    hour = models.DateTimeField(help_text="The hour's start, UTC.")
    quantity = models.DecimalField(max_digits=24, decimal_places=6, default=Decimal("0"))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["asset", "metric", "hour"]
        constraints = [
            models.UniqueConstraint(
                fields=["asset", "metric", "hour"], name="usage_once_per_asset_metric_hour"
            )
        ]
        indexes = [models.Index(fields=["customer", "metric", "hour"], name="usage_customer_metric_hour")]

    def __str__(self) -> str:
        return f"{self.asset_id} {self.metric} {self.hour:%Y-%m-%d %H}h {self.quantity}"


class IngestInbox(models.Model):
    """Accepted heartbeats waiting for the worker: one row per accepted request.

    The ingest view answers 202 only after this row is committed, so acceptance is as
    durable as the database; workers claim rows with SKIP LOCKED and delete them in the same
    transaction that stores their heartbeats (docs/ingest.md explains the trade-off).
    """

    id = models.BigAutoField(primary_key=True)
    device_id = models.UUIDField()
    received_at = models.DateTimeField(default=timezone.now)
    count = models.PositiveIntegerField()
    items = models.JSONField()
    attempts = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "ingest inbox"

    def __str__(self) -> str:
        return f"inbox #{self.pk} ({self.count} heartbeats)"


class FailedBatch(models.Model):
    """Inbox rows that kept failing, set aside with their error for an operator."""

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(default=timezone.now)
    device_id = models.UUIDField()
    received_at = models.DateTimeField()
    items = models.JSONField()
    error = models.TextField()
    retried_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "failed batches"

    def __str__(self) -> str:
        return f"failed batch #{self.pk}"


class AssetStatusChange(TenantOwned):
    """The history of an asset's derived status: the asset page's timeline, and the offline
    intervals uptime (and so service credits) is measured from."""

    id = models.BigAutoField(primary_key=True)
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="status_changes")
    status = models.CharField(max_length=20, choices=AssetStatus.choices)
    previous = models.CharField(max_length=20, choices=AssetStatus.choices)
    at = models.DateTimeField()

    class Meta:
        ordering = ["asset", "-at"]
        indexes = [models.Index(fields=["customer", "asset", "at"], name="status_change_asset_time")]

    def __str__(self) -> str:
        return f"{self.asset_id} {self.previous}→{self.status} at {self.at:%Y-%m-%d %H:%M}"


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


class Resolution(models.TextChoices):
    MINUTE = "minute", "Minute"
    HOUR = "hour", "Hour"
    DAY = "day", "Day (UTC)"


class TelemetryRollup(TenantOwned):
    """min / max / sum / count of one metric of one asset in one bucket: what charts read.

    Maintained by the ingest worker from each newly stored heartbeat (never twice: duplicates
    are not new), so a late heartbeat lands in its own bucket. Kept for good, unlike raw rows.
    """

    id = models.BigAutoField(primary_key=True)
    # No index of its own: `rollup_once_per_bucket` leads with it.
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="rollups", db_index=False)
    metric = models.CharField(max_length=60)
    resolution = models.CharField(max_length=6, choices=Resolution.choices)
    bucket = models.DateTimeField()
    count = models.PositiveIntegerField()
    total = models.FloatField(help_text="Sum of the values (telemetry, not money: floats are fine).")
    minimum = models.FloatField()
    maximum = models.FloatField()

    class Meta:
        ordering = ["asset", "metric", "resolution", "bucket"]
        constraints = [
            models.UniqueConstraint(
                fields=["asset", "metric", "resolution", "bucket"], name="rollup_once_per_bucket"
            )
        ]

    def __str__(self) -> str:
        return f"{self.asset_id} {self.metric} {self.resolution} {self.bucket:%Y-%m-%d %H:%M}"


class ImplausibleReading(TenantOwned):
    """A counter reading beyond its metric's `max_rate_per_hour`: stored, flagged, billed only
    once staff accept it (docs/billing.md, "Implausible counter readings").

    Kept by the ingest worker, which creates, re-judges and deletes pending rows as the
    readings around them arrive (fleet/usage.py); `status` accepted or rejected is staff's
    decision and the worker never changes it. One row per reading and metric.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        ACCEPTED = "accepted", "Accepted"
        REJECTED = "rejected", "Rejected"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(
        "portal.Customer", on_delete=models.PROTECT, related_name="implausiblereadings", db_index=False
    )
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="implausible_readings")
    # No index of its own: `implausible_once_per_reading` leads with (customer, device, seq).
    device = models.ForeignKey(
        Device, on_delete=models.PROTECT, related_name="implausible_readings", db_index=False
    )
    seq = models.BigIntegerField()
    metric = models.CharField(max_length=60)
    ts = models.DateTimeField(help_text="The reading's own time.")
    value = models.DecimalField(max_digits=24, decimal_places=6)
    baseline_value = models.DecimalField(max_digits=24, decimal_places=6, null=True, blank=True)
    baseline_ts = models.DateTimeField(null=True, blank=True)
    increment = models.DecimalField(
        max_digits=24, decimal_places=6, help_text="What accepting it adds to its hour's usage."
    )
    allowed = models.DecimalField(
        max_digits=24, decimal_places=6, help_text="The most the bound allowed over that time."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        "portal.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-ts"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "device", "seq", "metric"], name="implausible_once_per_reading"
            )
        ]
        indexes = [
            models.Index(fields=["customer", "status", "-ts"], name="implausible_customer_status"),
        ]

    def __str__(self) -> str:
        return f"{self.asset_id} {self.metric}#{self.seq} {self.status}"
