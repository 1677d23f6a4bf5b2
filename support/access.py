"""Who may do what with tickets, in one place (rows are scoped by `tickets_visible_to`).

- customer users (VIEW_TICKETS / OPEN_TICKETS): their own customer's tickets; open them, write
  public comments, reopen a resolved ticket or close it;
- support agents and operators (WORK_TICKETS): every ticket; assign, change status and
  priority, write internal notes;
- finance (RUN_INVOICES): billing tickets only (disputes) — comment, internal notes, status,
  assignment and priority, and settling with a credit note.

Files attached to an internal note are as internal as the note.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from portal.models import Customer, User
from portal.roles import Capability, can
from portal.tenancy import customer_id_scope
from support.models import Attachment, Category, Status, Ticket


def is_provider(user: Any) -> bool:
    return can(user, Capability.VIEW_ALL_CUSTOMERS)


def handles_disputes(user: Any) -> bool:
    return can(user, Capability.RUN_INVOICES) and not can(user, Capability.WORK_TICKETS)


def may_view_tickets(user: Any) -> bool:
    return can(user, Capability.VIEW_TICKETS) or can(user, Capability.RUN_INVOICES)


def tickets_visible_to(user: Any) -> QuerySet[Ticket]:
    if not may_view_tickets(user):
        return Ticket.objects.none()
    tickets = Ticket.objects.visible_to(user)
    if handles_disputes(user):
        tickets = tickets.filter(category=Category.BILLING)
    return tickets


def attachments_visible_to(user: Any, ticket: Ticket) -> QuerySet[Attachment]:
    attachments = ticket.attachments.all()
    if not may_see_internal(user):
        attachments = attachments.exclude(event__internal=True)
    return attachments


def may_open(user: User, customer: Customer) -> bool:
    scope = customer_id_scope(user)
    if scope is False or not can(user, Capability.OPEN_TICKETS):
        return False
    return scope is None or str(scope) == str(customer.pk)


def may_work(user: Any, ticket: Ticket) -> bool:
    if can(user, Capability.WORK_TICKETS):
        return True
    return handles_disputes(user) and ticket.category == Category.BILLING


def may_comment(user: Any, ticket: Ticket) -> bool:
    return may_work(user, ticket) or (
        can(user, Capability.OPEN_TICKETS) and str(customer_id_scope(user)) == str(ticket.customer_id)
    )


def may_write_internal(user: Any, ticket: Ticket) -> bool:
    return may_work(user, ticket) and (can(user, Capability.INTERNAL_NOTES) or handles_disputes(user))


def may_see_internal(user: Any) -> bool:
    return is_provider(user)


def may_transition(user: Any, ticket: Ticket, to: str) -> bool:
    if may_work(user, ticket):
        return True
    # The customer may reopen a resolved ticket, or close it.
    return (
        may_comment(user, ticket) and ticket.status == Status.RESOLVED and to in (Status.OPEN, Status.CLOSED)
    )
