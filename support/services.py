"""Writes of the support desk: tickets, comments, transitions, assignment, attachments, disputes.

Who may do what on a ticket (see `support.access`): a customer's users open tickets and write
public comments on their own; support agents work every ticket (assign, status, internal
notes); finance works billing tickets (disputes). After each commit the people concerned are
told: live `ticket.*` events (internal ones to staff only) and e-mail (never an internal note
to a customer).
"""

from __future__ import annotations

import codecs
import contextlib
import contextvars
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from billing import services as billing_services
from billing.models import Invoice, InvoiceLine
from fleet.models import Asset
from portal import outbox
from portal.models import Customer, User
from portal.roles import Capability, can
from portal.services import audit_record
from support import access, sla
from support import live as support_live
from support.models import (
    TRANSITIONS,
    UNRESOLVED,
    Attachment,
    Category,
    EventKind,
    Priority,
    Source,
    Status,
    Ticket,
    TicketEvent,
)
from support.tasks import ticket_notify

log = logging.getLogger(__name__)
TICKET_SERIES = "T"


class TransitionError(ValidationError):
    """A status change the ticket's state machine does not allow."""


_silent: contextvars.ContextVar[bool] = contextvars.ContextVar("support_silent", default=False)


@contextlib.contextmanager
def silently() -> Iterator[None]:
    """Write tickets without telling anyone (no e-mail, no live events): for loading demo data."""
    token = _silent.set(True)
    try:
        yield
    finally:
        _silent.reset(token)


def _event(
    ticket: Ticket, kind: str, *, author: User | None, body: str = "", internal: bool = False,
    from_status: str = "", to_status: str = "", at: datetime | None = None,
) -> TicketEvent:  # fmt: skip
    event = TicketEvent.objects.create(
        customer_id=ticket.customer_id, ticket=ticket, kind=kind, author=author, body=body,
        internal=internal, from_status=from_status, to_status=to_status, created_at=at or timezone.now(),
    )  # fmt: skip
    if not _silent.get():
        # The e-mail task through the outbox (committed with the event: a broker outage delays
        # it, never drops it); the live message on commit (the fast path).
        outbox.enqueue(ticket_notify, event_id=event.pk)
        transaction.on_commit(lambda: support_live.announce_event(event.pk))
    return event


@transaction.atomic
def ticket_open(
    *,
    actor: User | None,
    customer: Customer,
    subject: str,
    description: str,
    category: str = Category.QUESTION,
    priority: str = Priority.P3,
    source: str = Source.PORTAL,
    asset: Asset | None = None,
    invoice: Invoice | None = None,
    invoice_line: InvoiceLine | None = None,
    alarm_key: str = "",
    at: datetime | None = None,
) -> Ticket:
    if actor is not None and not access.may_open(actor, customer):
        raise PermissionDenied("Your role may not open tickets for this customer.")
    errors = {}
    if priority not in Priority.values:
        errors["priority"] = "P1, P2, P3 or P4."
    if category not in Category.values:
        errors["category"] = f"One of: {', '.join(Category.values)}."
    if not subject.strip():
        errors["subject"] = "Give the ticket a subject."
    if not description.strip():
        errors["description"] = "Say what happened."
    if errors:
        raise ValidationError(errors)
    for name, linked in (("asset", asset), ("invoice", invoice)):
        if linked is not None and linked.customer_id != customer.pk:
            raise ValidationError({name: f"Unknown {name}."})
    now = at or timezone.now()
    ticket = Ticket(
        customer=customer,
        number=billing_services.next_number(TICKET_SERIES, now.year),
        subject=subject.strip(),
        description=description.strip(),
        category=category,
        priority=priority,
        source=source,
        asset=asset,
        invoice=invoice,
        invoice_line=invoice_line,
        contract=invoice.contract if invoice is not None else None,
        alarm_key=alarm_key,
        created_by=actor,
        created_at=now,
    )
    sla.apply_terms(ticket, now)
    if ticket.asset_id is not None and ticket.contract_id is None and ticket.sla_source != "default":
        ticket.contract = ticket.customer.contracts.filter(number=ticket.sla_source).first()
    ticket.full_clean(exclude=["number"], validate_constraints=False)  # the database enforces them
    ticket.save()
    _event(ticket, EventKind.SYSTEM, author=actor, body=f"Opened ({ticket.get_source_display().lower()}).",
           to_status=Status.NEW, at=now)  # fmt: skip
    audit_record(actor=actor, action="ticket.opened", target=ticket)
    return ticket


def _locked(ticket: Ticket) -> Ticket:
    return Ticket.objects.select_for_update().get(pk=ticket.pk)


def _move(ticket: Ticket, to: str, actor: User | None, now: datetime, *, note: str = "") -> None:
    if to not in TRANSITIONS[ticket.status]:
        now_label, to_label = ticket.get_status_display().lower(), Status(to).label.lower()
        raise TransitionError({"status": f"A {now_label} ticket cannot become {to_label}."})
    before = ticket.status
    if ticket.is_unresolved:  # settle the clocks up to this moment before they stop or restart
        sla.settle_maintenance([ticket], now)
        ticket.first_response_breached, ticket.resolution_breached, _ = sla.assess(ticket, now)
    if before == Status.PENDING_CUSTOMER and ticket.pending_since is not None:
        ticket.paused_seconds += int((now - ticket.pending_since).total_seconds())
        ticket.pending_since = None
    if to == Status.PENDING_CUSTOMER:
        ticket.pending_since = now
    if to == Status.RESOLVED:
        ticket.resolved_at = now
    if to == Status.CLOSED:
        ticket.closed_at = now
    if before == Status.RESOLVED and to == Status.OPEN:
        ticket.resolved_at = None
    ticket.status = to
    ticket.first_response_breached, ticket.resolution_breached, ticket.sla_state = sla.assess(ticket, now)
    ticket.save()
    body = note or f"{Status(before).label} → {Status(to).label}"
    _event(ticket, EventKind.STATUS, author=actor, body=body, from_status=before, to_status=to, at=now)


@transaction.atomic
def ticket_transition(*, actor: User, ticket: Ticket, to: str, at: datetime | None = None) -> Ticket:
    ticket = _locked(ticket)
    if to not in Status.values:
        raise TransitionError({"status": f"Unknown status {to!r}."})
    if not access.may_transition(actor, ticket, to):
        raise PermissionDenied("Your role may not move this ticket to that status.")
    _move(ticket, to, actor, at or timezone.now())
    audit_record(actor=actor, action="ticket.status", target=ticket, data={"status": to})
    return ticket


@transaction.atomic
def ticket_comment(
    *, actor: User, ticket: Ticket, body: str, internal: bool = False, at: datetime | None = None
) -> TicketEvent:
    ticket = _locked(ticket)
    if not body.strip():
        raise ValidationError({"body": "Write something."})
    if internal and not access.may_write_internal(actor, ticket):
        raise PermissionDenied("Only provider staff write internal notes.")
    if not access.may_comment(actor, ticket):
        raise PermissionDenied("Your role may not comment on this ticket.")
    if ticket.status == Status.CLOSED:
        raise ValidationError({"body": "This ticket is closed; open a new one."})
    now = at or timezone.now()
    staff = access.is_provider(actor)
    event = _event(ticket, EventKind.COMMENT, author=actor, body=body.strip(), internal=internal, at=now)
    if staff and not internal and ticket.first_responded_at is None:
        ticket.first_responded_at = now
        ticket.first_response_breached = now > ticket.first_response_due
    if not staff and ticket.status == Status.PENDING_CUSTOMER:
        _move(ticket, Status.OPEN, actor, now, note="The customer replied.")  # resumes the clock
    elif staff and not internal and ticket.status == Status.NEW:
        _move(ticket, Status.OPEN, actor, now)
    else:
        ticket.first_response_breached, ticket.resolution_breached, ticket.sla_state = sla.assess(ticket, now)
        ticket.save()
    return event


@transaction.atomic
def ticket_assign(*, actor: User, ticket: Ticket, assignee: User | None) -> Ticket:
    ticket = _locked(ticket)
    if not access.may_work(actor, ticket):
        raise PermissionDenied("Your role may not assign tickets.")
    if assignee is not None and not (assignee.is_active and can(assignee, Capability.WORK_TICKETS)):
        raise ValidationError({"assignee": "Tickets are assigned to active support agents."})
    ticket.assignee = assignee
    ticket.save(update_fields=["assignee", "updated_at"])
    name = assignee.full_name or assignee.email if assignee else "nobody"
    _event(ticket, EventKind.ASSIGNMENT, author=actor, body=f"Assigned to {name}.")
    return ticket


@transaction.atomic
def ticket_set_priority(*, actor: User, ticket: Ticket, priority: str) -> Ticket:
    """A new priority re-reads the SLA terms (due times from the opening, as before)."""
    ticket = _locked(ticket)
    if not access.may_work(actor, ticket):
        raise PermissionDenied("Your role may not change the priority.")
    if priority not in Priority.values:
        raise ValidationError({"priority": "P1, P2, P3 or P4."})
    before, ticket.priority = ticket.priority, priority
    sla.apply_terms(ticket, ticket.created_at)
    ticket.first_response_breached, ticket.resolution_breached, ticket.sla_state = sla.assess(
        ticket, timezone.now()
    )
    ticket.save()
    _event(ticket, EventKind.SYSTEM, author=actor, body=f"Priority {before} → {priority}.")
    return ticket


# Attachments --------------------------------------------------------------------------------

MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "application/pdf": (b"%PDF-",),
}


def _sniff(upload: UploadedFile) -> str | None:
    """The allowed type this file is, by extension and first bytes; None when not allowed."""
    name = (upload.name or "").lower()
    upload.seek(0)
    head = upload.read(512)
    upload.seek(0)
    for content_type, extensions in settings.ATTACHMENT_TYPES.items():
        if not name.endswith(extensions):
            continue
        if content_type in MAGIC:
            return content_type if head.startswith(MAGIC[content_type]) else None
        try:  # text: must decode (a character cut at the end of the sample is fine), no NUL bytes
            codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        except UnicodeDecodeError:
            return None
        return content_type if b"\x00" not in head else None
    return None


@transaction.atomic
def attachment_add(
    *, actor: User, ticket: Ticket, upload: UploadedFile, event: TicketEvent | None = None
) -> Attachment:
    if not access.may_comment(actor, ticket):
        raise PermissionDenied("Your role may not add files to this ticket.")
    if ticket.status == Status.CLOSED:
        raise ValidationError({"file": "This ticket is closed; open a new one."})
    if upload.size is None or upload.size > settings.ATTACHMENT_MAX_BYTES:
        limit = settings.ATTACHMENT_MAX_BYTES // (1024 * 1024)
        raise ValidationError({"file": f"Files up to {limit} MB."})
    content_type = _sniff(upload)
    if content_type is None:
        raise ValidationError({"file": "PNG, JPEG, PDF, text, log or CSV files only."})
    name = (upload.name or "file").replace("/", "_").replace("\\", "_")[-200:]
    if event is None:  # a file on its own gets its own line in the timeline, with the link
        event = _event(ticket, EventKind.SYSTEM, author=actor, body=f"Attached {name}.")
    attachment = Attachment(
        customer_id=ticket.customer_id, ticket=ticket, event=event, name=name, content_type=content_type,
        size=upload.size, uploaded_by=actor,
    )  # fmt: skip
    attachment.file.save(name, upload, save=False)
    attachment.save()
    return attachment


# Billing disputes ---------------------------------------------------------------------------


class DisputeExistsError(ValidationError):
    """The invoice already has an open dispute: add to that ticket instead (`.ticket`)."""

    def __init__(self, ticket: Ticket) -> None:
        self.ticket = ticket
        super().__init__(
            {"invoice": f"Dispute {ticket.number} about this invoice is still open; add to it instead "
                        f"(/support/tickets/{ticket.pk}/)."}
        )  # fmt: skip


def open_dispute_of(invoice: Invoice) -> Ticket | None:
    """The invoice's unresolved dispute ticket, if any (at most one: dispute_open sees to it)."""
    return (
        Ticket.objects.filter(customer_id=invoice.customer_id, invoice=invoice, source=Source.DISPUTE)
        .filter(status__in=UNRESOLVED)
        .order_by("created_at")
        .first()
    )


@transaction.atomic
def dispute_open(*, actor: User, invoice: Invoice, reason: str, line: InvoiceLine | None = None) -> Ticket:
    """Open a dispute ticket for `invoice` (or one line). One open dispute per invoice: while
    one is unresolved, raises DisputeExistsError naming it (the invoice row is locked, so two
    admins disputing at once get one ticket and one such error)."""
    if not can(actor, Capability.DISPUTE_INVOICES):
        raise PermissionDenied("Only a customer admin disputes an invoice.")
    Invoice.objects.select_for_update().filter(pk=invoice.pk).values_list("pk", flat=True).first()
    existing = open_dispute_of(invoice)
    if existing is not None:
        raise DisputeExistsError(existing)
    if not reason.strip():
        raise ValidationError({"reason": "Say what is wrong with the invoice."})
    if line is not None and line.invoice_id != invoice.pk:
        raise ValidationError({"line": "Unknown line."})
    what = f"line {line.position} ({line.description})" if line else "the invoice"
    return ticket_open(
        actor=actor, customer=invoice.customer, subject=f"Dispute of {invoice.number}: {what}"[:200],
        description=reason, category=Category.BILLING, priority=Priority.P3, source=Source.DISPUTE,
        invoice=invoice, invoice_line=line,
    )  # fmt: skip


@transaction.atomic
def dispute_credit(*, actor: User, ticket: Ticket, amount: Decimal, reason: str) -> Ticket:
    """Finance settles a dispute: a credit note on the invoice, a public reply, the ticket resolved."""
    ticket = _locked(ticket)
    if (
        ticket.invoice is None
        or not can(actor, Capability.RUN_INVOICES)
        or not access.may_work(actor, ticket)
    ):
        raise PermissionDenied("Finance settles billing disputes with a credit note.")
    note = billing_services.credit_note_create(
        actor=actor, invoice=ticket.invoice, amount=amount, reason=reason
    )
    ticket.credit_note = note
    ticket.save(update_fields=["credit_note", "updated_at"])
    now = timezone.now()
    body = f"Credit note {note.number} issued: {note.total} {note.currency} ({reason.strip()})."
    _event(ticket, EventKind.COMMENT, author=actor, at=now, body=body)
    if ticket.first_responded_at is None:
        ticket.first_responded_at = now
        ticket.first_response_breached = now > ticket.first_response_due
    if ticket.status in (Status.NEW, Status.PENDING_CUSTOMER):
        _move(ticket, Status.OPEN, actor, now)
    if ticket.status == Status.OPEN:
        _move(ticket, Status.RESOLVED, actor, now, note="Resolved with a credit note.")
    return ticket


def auto_close(*, now: datetime | None = None) -> int:
    """Close tickets resolved more than SUPPORT_AUTO_CLOSE_DAYS ago (each in its own
    transaction; a ticket someone is changing right now is left for the next run). Returns
    how many were closed."""
    days = settings.SUPPORT_AUTO_CLOSE_DAYS
    if days <= 0:
        return 0
    now = now or timezone.now()
    closed = 0
    due = Ticket.objects.filter(status=Status.RESOLVED, resolved_at__lt=now - timedelta(days=days))
    for pk in list(due.values_list("pk", flat=True)[:5000]):
        with transaction.atomic():
            ticket = due.select_for_update(skip_locked=True).filter(pk=pk).first()
            if ticket is None:  # reopened (or resolved again) meanwhile, or being changed
                continue
            note = f"Closed automatically {days} day{'s' if days != 1 else ''} after it was resolved."
            _move(ticket, Status.CLOSED, None, now, note=note)
            audit_record(actor=None, action="ticket.auto_closed", target=ticket, data={"days": days})
            closed += 1
    return closed


def sla_sweep(*, now: datetime | None = None) -> int:
    """Flag breaches and tickets about to breach; each change goes out live. Returns how many changed."""
    now = now or timezone.now()
    changed = 0
    unresolved = Ticket.objects.filter(status__in=[Status.NEW, Status.OPEN, Status.PENDING_CUSTOMER])
    unresolved = unresolved.select_related("assignee")  # its name goes out with a change
    for chunk in _chunks(unresolved.iterator(), 1000):
        paused_before = {t.pk: t.maintenance_paused_seconds for t in chunk}
        sla.settle_maintenance(chunk, now)  # one query for the chunk's windows
        for ticket in chunk:
            moved = paused_before[ticket.pk] != ticket.maintenance_paused_seconds
            changed += _sweep_one(ticket, now, paused_moved=moved)
    return changed


def _chunks(rows: Iterator[Ticket], size: int) -> Iterator[list[Ticket]]:
    chunk: list[Ticket] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _sweep_one(ticket: Ticket, now: datetime, *, paused_moved: bool) -> int:
    """Store the ticket's settled clocks; 1 when its SLA flags changed. Either change goes out
    live (`ticket.sla`), so open pages show the new state and due time."""
    if paused_moved:  # the due date moves with it (a window began, ran on, moved or was cancelled)
        ticket.due_at = ticket.next_due
        Ticket.objects.filter(pk=ticket.pk).update(
            maintenance_paused_seconds=ticket.maintenance_paused_seconds, due_at=ticket.due_at
        )
    flags = sla.assess(ticket, now)
    changed = flags != (ticket.first_response_breached, ticket.resolution_breached, ticket.sla_state)
    if changed:
        ticket.first_response_breached, ticket.resolution_breached, ticket.sla_state = flags
        Ticket.objects.filter(pk=ticket.pk).update(
            first_response_breached=flags[0], resolution_breached=flags[1], sla_state=flags[2]
        )
    if changed or paused_moved:
        support_live.announce_sla(ticket, now)
    return int(changed)


# Alarms → tickets live in support/alarm_tickets.py (imported last: it calls back into this module).
from support.alarm_tickets import on_alarm_cleared, on_alarm_raised  # noqa: E402

__all__ = ["on_alarm_cleared", "on_alarm_raised"]
