"""Planned downtime and stops the customer caused: what availability leaves out, and what
alarms, tickets and SLA clocks respect (docs/availability.md)."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import F, Q

from fleet.models.assets import Asset, Site
from portal.tenancy import TenantOwned


class WindowStatus(models.TextChoices):
    PROPOSED = "proposed", "Proposed"  # suggested by a prediction's ticket; not in effect yet
    PLANNED = "planned", "Planned"
    CANCELLED = "cancelled", "Cancelled"


class Recurrence(models.TextChoices):
    NONE = "", "Once"
    DAILY = "daily", "Every day"
    WEEKLY = "weekly", "Every week"
    MONTHLY = "monthly", "Every month"


class MaintenanceWindow(TenantOwned):
    """A planned service visit: from `starts_at` to `ends_at` (or `closed_early_at`), for the
    listed assets, else every asset of `site`, else every asset of the customer. Recurring
    windows repeat the same span until `recurs_until` (inclusive)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=120)
    reason = models.TextField(blank=True)
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    site = models.ForeignKey(
        Site, null=True, blank=True, on_delete=models.CASCADE, related_name="maintenance_windows"
    )
    assets = models.ManyToManyField(Asset, blank=True, related_name="maintenance_windows")
    recurrence = models.CharField(max_length=10, choices=Recurrence.choices, blank=True, default="")
    recurs_until = models.DateField(null=True, blank=True)
    is_emergency = models.BooleanField(default=False, help_text="Opened at once, not planned ahead.")
    status = models.CharField(max_length=10, choices=WindowStatus.choices, default=WindowStatus.PLANNED)
    closed_early_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        "portal.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["starts_at"]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=F("starts_at")), name="window_ends_after_start"),
        ]
        indexes = [models.Index(fields=["customer", "status", "starts_at"], name="window_customer_start")]

    def __str__(self) -> str:
        return f"{self.title} {self.starts_at:%Y-%m-%d %H:%M}"


class StopCause(models.TextChoices):
    CUSTOMER = "customer", "Caused by the customer"


class StatusExclusion(TenantOwned):
    """An interval of an asset's status history that support marked as not the provider's
    doing (a stop the customer caused), with the reason; availability may leave it out."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    asset = models.ForeignKey(Asset, on_delete=models.CASCADE, related_name="status_exclusions")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    cause = models.CharField(max_length=20, choices=StopCause.choices, default=StopCause.CUSTOMER)
    reason = models.TextField()
    created_by = models.ForeignKey(
        "portal.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["asset", "starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")), name="exclusion_ends_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.asset_id} {self.starts_at:%Y-%m-%d %H:%M}–{self.ends_at:%H:%M}"
