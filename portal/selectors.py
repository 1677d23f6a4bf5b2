"""Reads of the core, scoped by the acting user."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from portal.models import AuditEntry, Customer, User
from portal.roles import Capability, can


def customer_list(*, actor: User) -> QuerySet[Customer]:
    return Customer.objects.visible_to(actor).annotate(
        user_count=Count("users", filter=Q(users__is_active=True), distinct=True)
    )


def user_list(*, actor: User, customer: Customer | None = None, search: str = "") -> QuerySet[User]:
    users = User.objects.visible_to(actor).select_related("customer")
    if customer is not None:
        users = users.for_customer(customer)
    if search:
        users = users.filter(Q(email__icontains=search) | Q(full_name__icontains=search))
    return users.order_by("customer__name", "email")


def audit_list(*, actor: User) -> QuerySet[AuditEntry]:
    if not can(actor, Capability.VIEW_AUDIT_LOG):
        return AuditEntry.objects.none()
    return AuditEntry.objects.visible_to(actor).select_related("customer", "target_type")


def home_summary(*, actor: User) -> dict[str, Any]:
    """The figures on a role's home page, all through scoped querysets."""
    customers = Customer.objects.visible_to(actor)
    return {
        "customers": customer_list(actor=actor).filter(is_active=True),
        "customer_count": customers.count(),
        "user_count": User.objects.visible_to(actor).filter(is_active=True).count(),
        "recent_activity": audit_list(actor=actor)[:8],
    }
