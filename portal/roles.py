"""The five roles and what each may do: the table of docs/architecture.md ("Who uses it"), in one
place.

Views, API views, exports, tasks and consumers ask `can(user, Capability.X)`; they never
compare role names themselves. Which *rows* a user may reach is the other half of access and
lives in `portal.tenancy` (customer users: their own customer; staff: every customer).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser

    from portal.models import User


class Role(models.TextChoices):
    CUSTOMER_VIEWER = "customer_viewer", "Customer viewer"
    CUSTOMER_ADMIN = "customer_admin", "Customer admin"
    SUPPORT = "support", "Support agent"
    FINANCE = "finance", "Finance"
    OPERATOR = "operator", "Operator"


CUSTOMER_ROLES = frozenset({Role.CUSTOMER_VIEWER, Role.CUSTOMER_ADMIN})
STAFF_ROLES = frozenset({Role.SUPPORT, Role.FINANCE, Role.OPERATOR})


class Capability(StrEnum):
    # What a customer's own users may do (scoped to their customer by portal.tenancy).
    VIEW_FLEET = "view_fleet"  # sites, assets, live status, telemetry, alarms
    VIEW_USAGE = "view_usage"
    VIEW_CONTRACTS = "view_contracts"
    VIEW_TICKETS = "view_tickets"
    OPEN_TICKETS = "open_tickets"  # open and comment (public) on tickets
    MANAGE_CUSTOMER_USERS = "manage_customer_users"  # users of their own customer
    MANAGE_API_TOKENS = "manage_api_tokens"
    VIEW_INVOICES = "view_invoices"  # and download them
    DISPUTE_INVOICES = "dispute_invoices"
    VIEW_AUDIT_LOG = "view_audit_log"
    TUNE_THRESHOLDS = "tune_thresholds"  # tighten alarm thresholds of their own assets
    # Provider staff.
    VIEW_ALL_CUSTOMERS = "view_all_customers"  # reach across tenants at all
    ACKNOWLEDGE_ALARMS = "acknowledge_alarms"
    WORK_TICKETS = "work_tickets"  # assign, change status
    INTERNAL_NOTES = "internal_notes"  # write and read internal notes
    MANAGE_PLANS = "manage_plans"
    MANAGE_CONTRACTS = "manage_contracts"
    RUN_INVOICES = "run_invoices"  # invoice runs, review, finalize, void, credit notes, exports
    MANAGE_CUSTOMERS = "manage_customers"
    EDIT_BILLING_IDENTITY = "edit_billing_identity"  # a customer's address, VAT ID, tax rate
    RECORD_PAYMENTS = "record_payments"
    MANAGE_FLEET = "manage_fleet"  # sites, asset models, assets, devices and credentials
    MANAGE_ALL_USERS = "manage_all_users"
    USE_ADMIN = "use_admin"  # the Django admin


_CUSTOMER_VIEWER = frozenset(
    {
        Capability.VIEW_FLEET,
        Capability.VIEW_USAGE,
        Capability.VIEW_CONTRACTS,
        Capability.VIEW_TICKETS,
        Capability.OPEN_TICKETS,
    }
)
_CUSTOMER_ADMIN = _CUSTOMER_VIEWER | {
    Capability.MANAGE_CUSTOMER_USERS,
    Capability.MANAGE_API_TOKENS,
    Capability.VIEW_INVOICES,
    Capability.DISPUTE_INVOICES,
    Capability.VIEW_AUDIT_LOG,
    Capability.TUNE_THRESHOLDS,
}
_SUPPORT = frozenset(
    {
        Capability.VIEW_ALL_CUSTOMERS,
        Capability.VIEW_FLEET,
        Capability.VIEW_CONTRACTS,
        Capability.VIEW_TICKETS,
        Capability.OPEN_TICKETS,
        Capability.ACKNOWLEDGE_ALARMS,
        Capability.WORK_TICKETS,
        Capability.INTERNAL_NOTES,
    }
)
_FINANCE = frozenset(
    {
        Capability.VIEW_ALL_CUSTOMERS,
        Capability.VIEW_USAGE,
        Capability.VIEW_CONTRACTS,
        Capability.VIEW_INVOICES,
        Capability.MANAGE_PLANS,
        Capability.MANAGE_CONTRACTS,
        Capability.RUN_INVOICES,
        Capability.EDIT_BILLING_IDENTITY,
        Capability.RECORD_PAYMENTS,
    }
)

# The access table. The operator may do everything.
ACCESS: dict[Role, frozenset[Capability]] = {
    Role.CUSTOMER_VIEWER: _CUSTOMER_VIEWER,
    Role.CUSTOMER_ADMIN: _CUSTOMER_ADMIN,
    Role.SUPPORT: _SUPPORT,
    Role.FINANCE: _FINANCE,
    Role.OPERATOR: frozenset(Capability),
}


def can(user: User | AnonymousUser | Any, capability: Capability) -> bool:
    """True when an active, logged-in user's role grants `capability`."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return False
    role = getattr(user, "role", None)
    return role is not None and capability in ACCESS.get(Role(role), frozenset())


def is_staff_role(role: str) -> bool:
    return role in STAFF_ROLES
