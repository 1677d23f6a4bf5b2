"""Reads of support: the ticket queue and its filters (one FilterSet for the API list and the
agent queue page; fleet/selectors.py says how), scoped by `access.tickets_visible_to`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import Count, F, Q, QuerySet
from django.db.models.functions import TruncMonth

from portal.models import User
from portal.roles import Role
from portal.validation import is_uuid
from support import access
from support.models import UNRESOLVED, Category, Priority, SlaState, Status, Ticket


def ticket_list(*, actor: User) -> QuerySet[Ticket]:
    """The tickets the actor may see, soonest due first; narrow with `TicketFilter`."""
    return (
        access.tickets_visible_to(actor)
        .select_related("customer", "asset", "invoice", "contract", "assignee")
        .order_by(F("due_at").asc(nulls_last=True), "-created_at")
    )


def sla_report_rows(*, actor: User, now: datetime) -> list[dict[str, Any]]:
    """Per month (UTC) and customer: tickets opened; first responses in time, breached and still
    awaited; resolutions. A first response still pending and not yet due is neither in time nor
    breached: it is awaited, and the share in time counts only the decided ones (None when no
    ticket of the row is decided yet). One pending past its due time is breached, whether or not
    the sweep has flagged it yet (docs/support.md, "SLA report")."""
    no_answer = Q(first_responded_at__isnull=True, status__in=UNRESOLVED)
    breached = Q(first_response_breached=True) | (no_answer & Q(first_response_due__lt=now))
    in_time = Q(first_responded_at__isnull=False, first_response_breached=False)
    rows = (
        access.tickets_visible_to(actor)
        .annotate(month=TruncMonth("created_at"))
        .values("month", "customer__name")
        .annotate(
            opened=Count("id"),
            first_in_time=Count("id", filter=in_time),
            first_breached=Count("id", filter=breached),
            first_awaited=Count("id", filter=no_answer & ~breached),
            resolved=Count("id", filter=Q(resolved_at__isnull=False)),
            resolution_breached=Count("id", filter=Q(resolution_breached=True)),
        )
        .order_by("-month", "customer__name")
    )
    table = []
    for row in rows:
        decided = row["first_in_time"] + row["first_breached"]
        share = round(100 * row["first_in_time"] / decided, 1) if decided else None
        table.append({**row, "first_in_time_pct": share})
    return table


def agent_list() -> QuerySet[User]:
    """Who a ticket can be assigned to: active provider staff of the support desk."""
    return User.objects.filter(role__in=[Role.SUPPORT, Role.OPERATOR], is_active=True).order_by("email")


def assignable_users() -> QuerySet[User]:
    """Users a ticket may be assigned to by id (the service checks the role): provider staff."""
    return User.objects.filter(customer__isnull=True)


def _validate_assignee(value: str) -> None:
    if value not in ("me", "none") and not is_uuid(value):
        raise ValidationError("A user id, `me` or `none`.", code="invalid")


class TicketFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        choices=[("unresolved", "Unresolved (open, in progress or waiting)"), *Status.choices],
        method="filter_status",
        help_text="A status, or `unresolved`.",
    )
    priority = django_filters.ChoiceFilter(choices=Priority.choices)
    category = django_filters.ChoiceFilter(choices=Category.choices)
    sla_state = django_filters.ChoiceFilter(choices=[c for c in SlaState.choices if c[0]])
    customer = django_filters.UUIDFilter(field_name="customer_id")
    assignee = django_filters.CharFilter(
        method="filter_assignee", validators=[_validate_assignee], help_text="A user id, `me` or `none`."
    )
    q = django_filters.CharFilter(method="filter_search", help_text="Number or subject contains.")

    class Meta:
        model = Ticket
        fields = ["status", "priority", "category", "sla_state", "customer", "assignee", "q"]

    def filter_status(self, tickets: QuerySet[Ticket], name: str, value: str) -> QuerySet[Ticket]:
        if value == "unresolved":
            return tickets.filter(status__in=UNRESOLVED)
        return tickets.filter(status=value)

    def filter_assignee(self, tickets: QuerySet[Ticket], name: str, value: str) -> QuerySet[Ticket]:
        if value == "me":
            user: Any = getattr(self.request, "user", None)
            return tickets.filter(assignee_id=getattr(user, "pk", None))
        if value == "none":
            return tickets.filter(assignee__isnull=True)
        return tickets.filter(assignee_id=uuid.UUID(value))  # a UUID: the field validated it

    def filter_search(self, tickets: QuerySet[Ticket], name: str, value: str) -> QuerySet[Ticket]:
        value = value.strip()
        if not value:
            return tickets
        return tickets.filter(Q(number__icontains=value) | Q(subject__icontains=value))
