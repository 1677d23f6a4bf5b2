"""Tickets, their timeline (comments, status changes, assignments) and attachments.

A ticket's SLA due times come from the contract covering its asset (or the customer's) for its
priority; the resolution clock stops while the ticket waits for the customer. Comments are
public or internal: customers never see internal ones, by any channel.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.db.models import Q

from portal.priority import Priority
from portal.tenancy import TenantOwned


class Category(models.TextChoices):
    BREAKDOWN = "breakdown", "Breakdown"
    MAINTENANCE = "maintenance", "Maintenance"
    BILLING = "billing", "Billing"
    QUESTION = "question", "Question"


class Status(models.TextChoices):
    NEW = "new", "New"
    OPEN = "open", "Open"
    PENDING_CUSTOMER = "pending_customer", "Waiting for customer"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


class Source(models.TextChoices):
    PORTAL = "portal", "Portal"
    API = "api", "API"
    ALARM = "alarm", "Alarm"
    DISPUTE = "dispute", "Billing dispute"


# The legal transitions, exactly: new → open → pending_customer ⇄ open → resolved → closed,
# and reopen (resolved → open). Everything else is refused.
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.NEW: frozenset({Status.OPEN}),
    Status.OPEN: frozenset({Status.PENDING_CUSTOMER, Status.RESOLVED}),
    Status.PENDING_CUSTOMER: frozenset({Status.OPEN}),
    Status.RESOLVED: frozenset({Status.CLOSED, Status.OPEN}),
    Status.CLOSED: frozenset(),
}
UNRESOLVED = (Status.NEW, Status.OPEN, Status.PENDING_CUSTOMER)


class SlaState(models.TextChoices):
    NONE = "", "—"
    ON_TRACK = "on_track", "On track"
    AT_RISK = "at_risk", "About to breach"
    BREACHED = "breached", "Breached"


class Ticket(TenantOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    number = models.CharField(max_length=20, unique=True)
    subject = models.CharField(max_length=200)
    description = models.TextField()
    category = models.CharField(max_length=20, choices=Category.choices, default=Category.QUESTION)
    priority = models.CharField(max_length=2, choices=Priority.choices, default=Priority.P3)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.PORTAL)
    asset = models.ForeignKey(
        "fleet.Asset", null=True, blank=True, on_delete=models.PROTECT, related_name="tickets"
    )
    contract = models.ForeignKey(
        "billing.Contract", null=True, blank=True, on_delete=models.PROTECT, related_name="tickets"
    )
    invoice = models.ForeignKey(
        "billing.Invoice", null=True, blank=True, on_delete=models.PROTECT, related_name="tickets"
    )
    invoice_line = models.ForeignKey(
        "billing.InvoiceLine", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    credit_note = models.ForeignKey(
        "billing.CreditNote", null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets"
    )
    # Alarm tickets: "rule:<id>" / "offline" / "device_fault" — one unresolved ticket per asset and key.
    alarm_key = models.CharField(max_length=64, blank=True)
    # A proactive (prediction) ticket proposes a maintenance window; support plans it from here.
    maintenance_window = models.ForeignKey(
        "fleet.MaintenanceWindow", null=True, blank=True, on_delete=models.SET_NULL, related_name="tickets"
    )
    # Seconds the SLA clocks stood still because the ticket's asset was in a maintenance window.
    maintenance_paused_seconds = models.PositiveIntegerField(default=0)
    assignee = models.ForeignKey(
        "portal.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="assigned_tickets"
    )
    created_by = models.ForeignKey(
        "portal.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="created_tickets"
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)
    # SLA: minutes from the terms in force when the ticket was opened (or its priority changed).
    first_response_minutes = models.PositiveIntegerField()
    resolution_minutes = models.PositiveIntegerField()
    sla_source = models.CharField(max_length=60, help_text="The contract number, or 'default'.")
    first_response_due = models.DateTimeField()
    first_responded_at = models.DateTimeField(null=True, blank=True)
    paused_seconds = models.PositiveIntegerField(default=0, help_text="Time spent waiting for the customer.")
    pending_since = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    first_response_breached = models.BooleanField(default=False)
    resolution_breached = models.BooleanField(default=False)
    sla_state = models.CharField(
        max_length=10, choices=SlaState.choices, default=SlaState.ON_TRACK, blank=True
    )
    # The next deadline the desk works against (see `next_due`), kept for sorting the queue.
    due_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["asset", "alarm_key"],
                condition=~Q(alarm_key="") & Q(status__in=["new", "open", "pending_customer"]),
                name="one_unresolved_alarm_ticket_per_asset_key",
            )
        ]
        indexes = [
            models.Index(fields=["customer", "status"], name="ticket_customer_status"),
            models.Index(fields=["status", "due_at"], name="ticket_status_due"),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.subject}"

    def save(self, *args: object, **kwargs: object) -> None:
        self.due_at = self.next_due
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "due_at"}  # type: ignore[misc]
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    @property
    def is_unresolved(self) -> bool:
        return self.status in UNRESOLVED

    def resolution_due_at(self, now: datetime | None = None) -> datetime:
        """Opened + resolution minutes + time spent waiting for the customer and in maintenance
        (so far; `support.sla.settle_maintenance` keeps the latter up to date)."""
        paused = self.paused_seconds + self.maintenance_paused_seconds
        if self.pending_since is not None and now is not None:
            paused += int((now - self.pending_since).total_seconds())
        return self.created_at + timedelta(minutes=self.resolution_minutes, seconds=paused)

    @property
    def resolution_due(self) -> datetime:
        from django.utils import timezone

        return self.resolution_due_at(timezone.now())

    @property
    def next_due(self) -> datetime | None:
        """What the agent works against now: the first response, then the resolution."""
        if not self.is_unresolved:
            return None
        if self.first_responded_at is None:
            return min(self.first_response_due, self.resolution_due)
        return None if self.pending_since is not None else self.resolution_due


class EventKind(models.TextChoices):
    COMMENT = "comment", "Comment"
    STATUS = "status", "Status change"
    ASSIGNMENT = "assignment", "Assignment"
    SYSTEM = "system", "System"


class TicketEvent(TenantOwned):
    """One entry of a ticket's timeline. Internal entries are for provider staff only."""

    id = models.BigAutoField(primary_key=True)
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    author = models.ForeignKey(
        "portal.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    body = models.TextField(blank=True)
    internal = models.BooleanField(default=False)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["ticket", "created_at", "id"]

    def __str__(self) -> str:
        return f"{self.ticket_id} {self.kind} {self.created_at:%Y-%m-%d %H:%M}"


class AttachmentStorage(FileSystemStorage):
    """Private files under ATTACHMENTS_ROOT: outside static and media, served only through the
    access-checked view. The root is read from the settings on every use."""

    @property
    def base_location(self) -> str:
        return str(settings.ATTACHMENTS_ROOT)

    @property
    def location(self) -> str:
        return os.path.abspath(self.base_location)


def attachment_storage() -> FileSystemStorage:
    return AttachmentStorage()


def attachment_path(instance: Attachment, filename: str) -> str:
    # A random name, never the uploader's: nothing guessable, nothing executable.
    return f"attachments/{instance.ticket_id}/{uuid.uuid4().hex}"


class Attachment(TenantOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="attachments")
    event = models.ForeignKey(
        TicketEvent, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments"
    )
    file = models.FileField(upload_to=attachment_path, storage=attachment_storage, max_length=200)
    name = models.CharField(max_length=200)
    content_type = models.CharField(max_length=100)
    size = models.PositiveIntegerField()
    uploaded_by = models.ForeignKey(
        "portal.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["ticket", "created_at"]

    def __str__(self) -> str:
        return self.name
