"""Sites, the asset catalogue (asset models and their metrics), assets, devices and their
credentials.
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
