"""What devices report and what it becomes: heartbeats, the ingest inbox and set-aside
batches, hourly usage, status history, telemetry rollups, implausible counter readings.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models
from django.utils import timezone

from fleet.models.assets import (
    Asset,
    AssetStatus,
    Device,
)
from portal.tenancy import TenantOwned


class HeartbeatStatus(models.TextChoices):
    OK = "ok", "OK"
    WARNING = "warning", "Warning"
    FAULT = "fault", "Fault"


class Heartbeat(TenantOwned):
    """One report of a device, stored once per (device, seq).

    The table is partitioned by day on `ts` (pg_partman; docs/ingest.md, "Partitioned
    telemetry"): its primary key in the database is (id, ts), and a unique constraint must
    include `ts`, so (device, seq) is kept unique by the worker under the device's lock and
    (device, seq, ts) by the database.

    Every index costs each stored heartbeat an insert: `customer` and `device` have no index
    of their own, the composite indexes below lead with them. Every foreign key costs it a
    look-up at commit: only `device` has one in the database; `customer` and `asset` are the
    device's own, copied by the worker under the device's row lock (docs/ingest.md), and
    deleting either is still refused while heartbeats refer to it (PROTECT)."""

    id = models.BigAutoField(primary_key=True)
    customer = models.ForeignKey(
        "portal.Customer",
        on_delete=models.PROTECT,
        related_name="heartbeats",
        db_index=False,
        db_constraint=False,
    )
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="heartbeats", db_constraint=False)
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
            models.UniqueConstraint(fields=["device", "seq", "ts"], name="heartbeat_once_per_device_seq_ts")
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


class Resolution(models.TextChoices):
    MINUTE = "minute", "Minute"
    HOUR = "hour", "Hour"
    DAY = "day", "Day (UTC)"


class TelemetryRollup(TenantOwned):
    """min / max / sum / count of one metric of one asset in one bucket: what charts read.

    Maintained by the ingest worker from each newly stored heartbeat (never twice: duplicates
    are not new), so a late heartbeat lands in its own bucket. Partitioned by `resolution`,
    its minute rows by month on `bucket` (primary key (id, resolution, bucket) in the
    database): hour and day rollups are kept for good, minute ones MINUTE_ROLLUP_RETENTION_DAYS
    and raw rows RAW_RETENTION_DAYS (docs/ingest.md, "Partitioned telemetry").
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


class TelemetryRetention(TenantOwned):
    """A customer whose contract keeps telemetry longer than the settings do: when a partition
    past the setting's window is dropped, this customer's rows still within its own window are
    copied to the `..._retained` table first (docs/ingest.md, "Partitioned telemetry")."""

    id = models.BigAutoField(primary_key=True)
    customer = models.OneToOneField(
        "portal.Customer", on_delete=models.CASCADE, related_name="telemetry_retention"
    )
    raw_days = models.PositiveIntegerField(help_text="Raw heartbeats are kept this many days.")
    minute_days = models.PositiveIntegerField(help_text="Minute rollups are kept this many days.")

    class Meta:
        ordering = ["customer"]

    def __str__(self) -> str:
        return f"{self.customer_id}: raw {self.raw_days} d, minute rollups {self.minute_days} d"


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
