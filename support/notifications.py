"""E-mail about ticket events, to the people concerned. A customer never gets an internal note.

- a public reply or status change by provider staff (or by the system) → the customer users on
  the ticket: who opened it and who commented on it (the customer's admins when nobody did);
- a customer's comment → the assigned agent;
- an internal note → the assigned agent, never anyone of the customer.
"""

from __future__ import annotations

from django.core.mail import send_mail
from django.template.loader import render_to_string

from portal import formatting
from portal.links import portal_url
from portal.models import User
from portal.roles import CUSTOMER_ROLES, Role
from support.models import EventKind, Ticket, TicketEvent


def _customer_people(ticket: Ticket) -> set[User]:
    people = {ticket.created_by} if ticket.created_by and ticket.created_by.role in CUSTOMER_ROLES else set()
    commenters = User.objects.filter(
        pk__in=ticket.events.filter(kind=EventKind.COMMENT, internal=False).values("author_id"),
        role__in=CUSTOMER_ROLES,
    )
    people |= set(commenters)
    if not people:
        people = set(User.objects.filter(customer_id=ticket.customer_id, role=Role.CUSTOMER_ADMIN))
    # Only the ticket's own customer's active users, whatever the rows above say.
    return {p for p in people if p is not None and p.is_active and p.customer_id == ticket.customer_id}


def recipients(event: TicketEvent) -> set[User]:
    ticket = event.ticket
    author = event.author
    customer_wrote = author is not None and author.role in CUSTOMER_ROLES
    if event.internal or customer_wrote:
        people = {ticket.assignee} if ticket.assignee else set()
    elif event.kind == EventKind.COMMENT or (event.kind == EventKind.STATUS and event.to_status):
        people = _customer_people(ticket)
    elif event.kind == EventKind.SYSTEM and event.to_status == "new" and author is None:
        people = _customer_people(ticket)  # a ticket the system opened (an alarm)
    else:
        people = set()
    return {p for p in people if p is not None and p.is_active and p != author}


def _reply_by(ticket: Ticket) -> str:
    """When the customer can count on a first answer (in the active zone), if still pending."""
    if ticket.first_responded_at is not None or not ticket.is_unresolved:
        return ""
    return formatting.when(ticket.first_response_due)


def notify(event_id: int) -> int:
    event = (
        TicketEvent.objects.select_related("ticket", "ticket__customer", "ticket__assignee", "author")
        .filter(pk=event_id)
        .first()
    )
    if event is None:
        return 0
    ticket = event.ticket
    sent = 0
    for person in sorted(recipients(event), key=lambda u: u.email):
        if event.internal and person.role in CUSTOMER_ROLES:
            continue  # belt and braces: recipients() never returns them
        link = portal_url("ticket_detail", ticket.pk)
        # Times and figures as the recipient reads them on the pages: their zone and locale.
        with formatting.reader(locale=person.display_locale, time_zone=person.display_time_zone) as tz:
            body = render_to_string(
                "support/email/event.txt",
                {"ticket": ticket, "event": event, "person": person, "link": link,
                 "written": formatting.when(event.created_at), "reply_by": _reply_by(ticket), "zone": tz.key},
            )  # fmt: skip
        send_mail(
            subject=f"[{ticket.number}] {ticket.subject}",
            message=body,
            from_email=None,
            recipient_list=[person.email],
        )
        sent += 1
    return sent
