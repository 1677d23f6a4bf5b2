"""The fleet: where equipment stands (sites). Assets, devices and heartbeats build on this."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from portal.models import validate_time_zone
from portal.tenancy import TenantOwned


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
