"""Demo tickets: a question per demo customer, answered once, so the desk is not empty."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from portal.models import Customer, User
from support import services
from support.models import Ticket


def seed(customers: dict[str, Customer]) -> dict[str, int]:
    with services.silently():  # `make run` seeds before Redis runs; demo rows tell nobody
        return _seed(customers)


def _seed(customers: dict[str, Customer]) -> dict[str, int]:
    agent = User.objects.filter(email="support@fleetport.example").first()
    for customer in customers.values():
        if Ticket.objects.filter(customer=customer).exists():
            continue
        author = User.objects.filter(customer=customer, role="customer_admin").first()
        ticket = services.ticket_open(
            actor=author,
            customer=customer,
            subject="Can we add a second compressor next month?",
            description="Production grows in Q1. What would a second unit cost, and how soon?",
            category="question",
            priority="P4",
            at=timezone.now() - timedelta(hours=3),
        )
        if agent is not None:
            services.ticket_assign(actor=agent, ticket=ticket, assignee=agent)
            services.ticket_comment(
                actor=agent,
                ticket=ticket,
                body="Good news: a second unit can be installed within two weeks. I'll send the terms today.",
            )
            services.ticket_comment(
                actor=agent, ticket=ticket, body="Check stock in Hamburg first.", internal=True
            )
    return {"tickets": Ticket.objects.filter(customer__in=customers.values()).count()}
