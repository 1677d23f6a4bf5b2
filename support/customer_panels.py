"""Support's panel of the customer overview (portal/customer_overview.py): the customer's
unresolved tickets, as far as the actor's role shows tickets (finance: billing tickets)."""

from __future__ import annotations

from portal.home import Panel
from portal.models import Customer, User
from support import access
from support.models import UNRESOLVED
from support.selectors import ticket_list

LIMIT = 10  # soonest due first; the queue filtered to the customer has the rest


def tickets_panel(actor: User, customer: Customer) -> Panel | None:
    if not access.may_view_tickets(actor):
        return None
    tickets = ticket_list(actor=actor).filter(customer=customer, status__in=UNRESOLVED)
    return Panel(
        title="Open tickets",
        template="support/panels/customer_tickets.html",
        order=30,
        context={"customer": customer, "tickets": list(tickets[:LIMIT]), "count": tickets.count()},
    )
