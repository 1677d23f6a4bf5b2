"""Alarms become tickets (docs/support.md, "Alarm tickets"; docs/health.md): fleet's
AlarmRaised / AlarmCleared events, handled by support's tasks. Re-exported by
`support.services`, where the rest of the desk's writes live."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from fleet import windows
from fleet.models import Alarm, AlarmKind, MaintenanceWindow, WindowStatus
from portal import formatting
from support import wording
from support.models import Category, EventKind, Source, Status, Ticket
from support.services import _event, _move, ticket_open

log = logging.getLogger(__name__)


# A health rule's alarms (docs/health.md) open maintenance tickets, not breakdowns; they resolve
# themselves when the alarm clears, and a prediction's ticket proposes a window before the
# expected time.
PROACTIVE_KINDS = (AlarmKind.PREDICTION, AlarmKind.ANOMALY)
PROPOSED_WINDOW = timedelta(hours=2)


def _alarm_priority(alarm: Alarm) -> str:
    if alarm.health_rule is not None:
        return alarm.health_rule.ticket_priority
    if alarm.rule is not None:
        return alarm.rule.ticket_priority
    return str(settings.SUPPORT_ALARM_TICKETS.get(alarm.kind, ""))


def on_alarm_raised(*, alarm_id: str, **_: Any) -> None:
    """An alarm whose rule asks for it opens a ticket — or comments on / reopens the one it has."""
    alarm = (
        Alarm.objects.select_related("rule", "health_rule", "asset", "customer").filter(pk=alarm_id).first()
    )
    if alarm is None:
        return
    if alarm.in_maintenance:
        return  # raised inside a maintenance window: recorded, but no ticket and no e-mail
    priority = _alarm_priority(alarm)
    if not priority:
        return
    severity = alarm.get_severity_display().lower()
    # Written once, read by the customer and by staff: the customer's zone, named.
    raised = wording.when_zoned(alarm.raised_at, formatting.zone(alarm.customer.time_zone))
    note = f"Alarm raised: {alarm.message} ({severity}, {raised})."
    for attempt in range(3):
        try:
            with transaction.atomic():
                _ticket_for_alarm(alarm, priority, note)
            return
        except IntegrityError:
            # Another worker opened it at the same moment: comment on that one instead. Three
            # refusals in a row are something else: raise, so the task retries and logs it.
            if attempt == 2:
                raise


def alarm_subject(alarm: Alarm) -> str:
    """The machine once, then what happened: "Press 4 is offline", "Press 4 reports a fault
    (E42)", "Press 4: Oil overheating: temp_c is 97 (> 95)". Fleet's messages of the built-in
    kinds already start with the machine's name (and the offline one with a time, in the
    customer's zone, which a subject read in any time zone should not carry)."""
    name = alarm.asset.name
    if alarm.kind == AlarmKind.OFFLINE:
        return f"{name} is offline"[:200]
    message = alarm.message.strip()
    if message.startswith(name):
        return message[:200]
    return f"{name}: {message}"[:200]


def _ticket_for_alarm(alarm: Alarm, priority: str, note: str) -> None:
    now = timezone.now()
    open_ticket = (
        Ticket.objects.select_for_update()
        .filter(
            asset=alarm.asset,
            alarm_key=alarm.key,
            status__in=[Status.NEW, Status.OPEN, Status.PENDING_CUSTOMER],
        )
        .first()
    )
    if open_ticket is not None:
        _event(open_ticket, EventKind.COMMENT, author=None, body=note)
        return
    recent = (
        Ticket.objects.select_for_update()
        .filter(
            asset=alarm.asset,
            alarm_key=alarm.key,
            status=Status.RESOLVED,
            resolved_at__gte=now - timedelta(hours=settings.SUPPORT_REOPEN_WITHIN_HOURS),
        )
        .order_by("-resolved_at")
        .first()
    )
    if recent is not None:
        _move(recent, Status.OPEN, None, now, note="Reopened: the alarm came back.")
        _event(recent, EventKind.COMMENT, author=None, body=note)
        return
    proactive = alarm.kind in PROACTIVE_KINDS
    with transaction.atomic():  # a savepoint: the unique index may refuse a concurrent twin
        ticket = ticket_open(
            actor=None, customer=alarm.customer, subject=alarm_subject(alarm),
            description=note, category=Category.MAINTENANCE if proactive else Category.BREAKDOWN,
            priority=priority, source=Source.ALARM, asset=alarm.asset, alarm_key=alarm.key, at=now,
        )  # fmt: skip
        if alarm.kind == AlarmKind.PREDICTION and alarm.expected_at is not None:
            _propose_window(ticket, alarm)


def _propose_window(ticket: Ticket, alarm: Alarm) -> None:
    """A `proposed` window (not in effect: docs/health.md) for the asset, halfway from the
    prediction to the expected time and ending before it where there is room, on the full hour;
    linked to the ticket."""
    assert alarm.expected_at is not None
    now = alarm.raised_at
    lead = max(alarm.expected_at - now, timedelta(0))
    start = max(now, min(now + lead / 2, alarm.expected_at - PROPOSED_WINDOW))
    start = (start + timedelta(minutes=59)).replace(minute=0, second=0, microsecond=0)
    # Through fleet's service (audited; a proposal is announced to nobody until confirmed).
    window = windows.window_plan(
        actor=None, customer=ticket.customer, title=f"Proposed service: {alarm.asset.name}"[:120],
        reason=f"Ticket {ticket.number}: {alarm.message}", starts_at=start, ends_at=start + PROPOSED_WINDOW,
        assets=[alarm.asset], status=WindowStatus.PROPOSED, now=now,
    )  # fmt: skip
    ticket.maintenance_window = window
    ticket.save(update_fields=["maintenance_window"])


def on_alarm_cleared(*, alarm_id: str, **_: Any) -> None:
    alarm = Alarm.objects.select_related("asset").filter(pk=alarm_id).first()
    if alarm is None:
        return
    with transaction.atomic():
        ticket = (
            Ticket.objects.select_for_update()
            .filter(asset=alarm.asset, alarm_key=alarm.key)
            .order_by("-created_at")
            .first()
        )
        if ticket is not None and ticket.status != Status.CLOSED:
            why = f" ({alarm.cleared_reason})" if alarm.cleared_reason else ""
            _event(ticket, EventKind.COMMENT, author=None, body=f"Alarm cleared{why}: {alarm.message}.")
            if alarm.kind in PROACTIVE_KINDS and ticket.is_unresolved:
                _resolve_proactive(ticket, alarm)


def _resolve_proactive(ticket: Ticket, alarm: Alarm) -> None:
    """What the alarm predicted is off: the ticket resolves itself, its proposed window goes."""
    now = timezone.now()
    if ticket.status != Status.OPEN:
        _move(ticket, Status.OPEN, None, now, note="Opened to resolve: the alarm cleared.")
    _move(
        ticket, Status.RESOLVED, None, now, note=f"Resolved by itself: {alarm.cleared_reason or 'cleared'}."
    )
    if ticket.maintenance_window_id is None:
        return
    proposal = MaintenanceWindow.objects.filter(
        customer_id=ticket.customer_id, pk=ticket.maintenance_window_id, status=WindowStatus.PROPOSED
    ).first()
    if proposal is not None:  # one support planned already stays planned
        windows.window_cancel(actor=None, window=proposal, now=now)
