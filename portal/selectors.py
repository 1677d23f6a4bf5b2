"""Reads of the core, scoped by the acting user."""

from __future__ import annotations

from typing import Any, TypeVar

from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX
from django.db.models import Count, Q, QuerySet

from portal.models import AuditEntry, Customer, User
from portal.roles import Capability, can

UserSet = TypeVar("UserSet", bound=QuerySet[Any])


def customer_list(*, actor: User) -> QuerySet[Customer]:
    members = Q(users__is_active=True)
    if not can(actor, Capability.MANAGE_ALL_USERS):  # as without_pending_invitees
        members &= ~Q(users__password__startswith=UNUSABLE_PASSWORD_PREFIX)
    return Customer.objects.visible_to(actor).annotate(
        user_count=Count("users", filter=members, distinct=True)
    )


def without_pending_invitees(users: UserSet, *, actor: User) -> UserSet:
    """`users` less, for a customer admin, the invitees who have not set a password yet.

    An address a customer admin invites that has an account outside their customer gets no
    user (portal.services.user_invite); a list that showed a new address's invitee at once
    would tell the two apart. An invitee appears once they accept, which is theirs to do.
    Operators see everyone (docs/security.md, "Invitations")."""
    if can(actor, Capability.MANAGE_ALL_USERS):
        return users
    return users.exclude(password__startswith=UNUSABLE_PASSWORD_PREFIX)


def user_list(*, actor: User, customer: Customer | None = None, search: str = "") -> QuerySet[User]:
    users = without_pending_invitees(User.objects.visible_to(actor).select_related("customer"), actor=actor)
    if customer is not None:
        users = users.for_customer(customer)
    if search:
        users = users.filter(Q(email__icontains=search) | Q(full_name__icontains=search))
    return users.order_by("customer__name", "email")


def audit_list(*, actor: User) -> QuerySet[AuditEntry]:
    if not can(actor, Capability.VIEW_AUDIT_LOG):
        return AuditEntry.objects.none()
    return AuditEntry.objects.visible_to(actor).select_related("customer", "target_type", "actor")


def home_summary(*, actor: User) -> dict[str, Any]:
    """The figures on a role's home page, all through scoped querysets."""
    customers = Customer.objects.visible_to(actor)
    return {
        "customers": customer_list(actor=actor).filter(is_active=True),
        "customer_count": customers.count(),
        "user_count": without_pending_invitees(User.objects.visible_to(actor), actor=actor)
        .filter(is_active=True)
        .count(),
        "recent_activity": audit_list(actor=actor)[:8],
    }
