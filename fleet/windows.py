"""Writes of maintenance windows: plan, move, cancel, confirm a proposed one, open an
emergency window now, close one early. Every write is audited; the customer's users are
e-mailed (`fleet.window_mail`, through the outbox, after the commit) when a window they are
affected by is planned, moved or cancelled. When a window is in effect is
`fleet.maintenance`'s business; telling pages when one begins or ends on its own is
`fleet.window_sweep`'s.

Who may: provider staff who work tickets (support, operators). Customers only read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from fleet.alarms import alarms_enter_maintenance
from fleet.live import publish_after_commit, window_messages
from fleet.maintenance import TICK, covering, occurrences
from fleet.models import Asset, MaintenanceWindow, Recurrence, Site, WindowStatus
from fleet.window_mail import window_notify
from portal import outbox
from portal.models import Customer, User
from portal.roles import Capability, can
from portal.services import audit_record

log = logging.getLogger(__name__)


# Reads ----------------------------------------------------------------------------------------


def window_list(*, actor: User) -> QuerySet[MaintenanceWindow]:
    """The windows `actor` may see: their customer's planned and cancelled ones; staff who plan
    windows see proposed ones too (a customer is told about a window once it is planned)."""
    windows = MaintenanceWindow.objects.visible_to(actor).select_related("customer", "site", "created_by")
    if not may_plan(actor):
        windows = windows.exclude(status=WindowStatus.PROPOSED)
    return windows.prefetch_related("assets").order_by("starts_at", "pk")


@dataclass(frozen=True)
class Occurrence:
    window: MaintenanceWindow
    starts_at: datetime
    ends_at: datetime
    current: bool


def upcoming(windows: QuerySet[MaintenanceWindow], *, now: datetime, days: int = 60) -> list[Occurrence]:
    """Current and coming spans (each repetition of a recurring window) of the windows that are
    not cancelled, up to `days` ahead, in time order."""
    horizon = now + timedelta(days=days)
    rows = (
        windows.exclude(status=WindowStatus.CANCELLED)
        .filter(starts_at__lt=horizon)
        .filter(Q(ends_at__gt=now) | ~Q(recurrence=Recurrence.NONE))
    )
    found = [
        Occurrence(window, began, ended, began <= now)
        for window in rows
        for began, ended in occurrences(
            window, now, horizon, window.customer.time_zone or "UTC", in_effect_only=False
        )
    ]
    return sorted(found, key=lambda o: (o.starts_at, o.ends_at, str(o.window.pk)))


def covering_asset(*, actor: User, asset: Asset) -> QuerySet[MaintenanceWindow]:
    return window_list(actor=actor).filter(covering(asset)).distinct()


class WindowStateError(ValidationError):
    """A step that does not apply to the window's status (cancelled, already closed)."""


def may_plan(user: User | None) -> bool:
    return user is not None and can(user, Capability.WORK_TICKETS)


def _check_actor(actor: User | None) -> None:
    if actor is not None and not may_plan(actor):
        raise PermissionDenied("Only support may plan maintenance windows.")


def _validate(
    *,
    customer: Customer,
    title: str,
    starts_at: datetime | None,
    ends_at: datetime | None,
    site: Site | None,
    assets: list[Asset],
    recurrence: str,
    recurs_until: date | None,
    allow_past: bool,
    now: datetime,
) -> None:
    errors: dict[str, str] = {}
    if not title.strip():
        errors["title"] = "Give the window a title."
    if starts_at is None:
        errors["starts_at"] = "When does the window start?"
    if ends_at is None:
        errors["ends_at"] = "When does the window end?"
    if starts_at is not None and ends_at is not None:
        if ends_at <= starts_at:
            errors["ends_at"] = "The window must end after it starts."
        elif not allow_past and ends_at <= now:
            errors["ends_at"] = "The window is over already; only an emergency window opens now."
    if site is not None and site.customer_id != customer.pk:
        errors["site"] = "Unknown site."
    if any(a.customer_id != customer.pk for a in assets):
        errors["assets"] = "Unknown asset."
    elif site is not None and any(a.site_id != site.pk for a in assets):
        errors["assets"] = "These assets are not all at the chosen site."
    if recurrence not in Recurrence.values:
        errors["recurrence"] = "Once, daily, weekly or monthly."
    elif (
        recurrence and recurs_until is not None and starts_at is not None and recurs_until < starts_at.date()
    ):
        errors["recurs_until"] = "The repetition must end on or after the first day."
    if errors:
        raise ValidationError(errors)


def _tell(window: MaintenanceWindow, change: str, **previous: str) -> None:
    """E-mail the customer's users after the commit (only windows in effect concern them)."""
    outbox.enqueue(window_notify, window_id=str(window.pk), change=change, **previous)


def _announce(window: MaintenanceWindow) -> None:
    """Live pages that show who is in maintenance fetch it again after the commit."""
    publish_after_commit(window_messages(window.customer_id, window.pk))


def _mark_alarms(window: MaintenanceWindow, now: datetime) -> None:
    """A planned window running at `now` (planned, confirmed or moved into its span): the
    alarms already active on its assets are in maintenance, as if raised in it. The sweep does
    this for a start that comes later (fleet.window_sweep)."""
    if window.status != WindowStatus.PLANNED:
        return
    running = occurrences(window, now, now + TICK, window.customer.time_zone or "UTC")
    alarms_enter_maintenance(window=window, spans=list(running))


def _snapshot(window: MaintenanceWindow) -> dict[str, str]:
    return {"starts_at": window.starts_at.isoformat(), "ends_at": window.ends_at.isoformat()}


@transaction.atomic
def window_plan(
    *,
    actor: User | None,
    customer: Customer,
    title: str,
    starts_at: datetime | None,
    ends_at: datetime | None,
    reason: str = "",
    site: Site | None = None,
    assets: Iterable[Asset] = (),
    recurrence: str = "",
    recurs_until: date | None = None,
    status: str = WindowStatus.PLANNED,
    is_emergency: bool = False,
    now: datetime | None = None,
) -> MaintenanceWindow:
    """A new window. `planned` ones are in effect and announced; a `proposed` one (what a
    prediction's ticket suggests) waits for `window_confirm`."""
    _check_actor(actor)
    now = now or timezone.now()
    listed = list(assets)
    if status not in (WindowStatus.PLANNED, WindowStatus.PROPOSED):
        raise ValidationError({"status": "A new window is planned or proposed."})
    _validate(
        customer=customer,
        title=title,
        starts_at=starts_at,
        ends_at=ends_at,
        site=site,
        assets=listed,
        recurrence=recurrence,
        recurs_until=recurs_until,
        allow_past=is_emergency,
        now=now,
    )
    if starts_at is None or ends_at is None:  # _validate said so already; for the type checker
        raise ValidationError({"starts_at": "When does the window start?"})
    window = MaintenanceWindow.objects.create(
        customer=customer,
        title=title.strip(),
        reason=reason.strip(),
        starts_at=starts_at,
        ends_at=ends_at,
        site=site,
        recurrence=recurrence,
        recurs_until=recurs_until if recurrence else None,
        is_emergency=is_emergency,
        status=status,
        created_by=actor,
    )
    window.assets.set(listed)
    audit_record(
        actor=actor,
        action="maintenance_window.planned"
        if status == WindowStatus.PLANNED
        else "maintenance_window.proposed",
        target=window,
        customer=customer,
        data={
            **_snapshot(window),
            "emergency": is_emergency,
            "assets": [str(a.pk) for a in listed],
            "site": str(site.pk) if site else None,
        },
    )
    if status == WindowStatus.PLANNED:
        _tell(window, "planned")
        _mark_alarms(window, now)
    _announce(window)
    return window


@transaction.atomic
def window_open_emergency(
    *,
    actor: User | None,
    customer: Customer,
    title: str,
    ends_at: datetime | None,
    reason: str = "",
    site: Site | None = None,
    assets: Iterable[Asset] = (),
    now: datetime | None = None,
) -> MaintenanceWindow:
    """An emergency window, in effect from now until `ends_at` (or until closed early)."""
    now = now or timezone.now()
    if ends_at is not None and ends_at <= now:
        raise ValidationError({"ends_at": "An emergency window opens now: it must end later."})
    return window_plan(
        actor=actor,
        customer=customer,
        title=title,
        starts_at=now,
        ends_at=ends_at,
        reason=reason,
        site=site,
        assets=assets,
        is_emergency=True,
        now=now,
    )


def _locked(window: MaintenanceWindow) -> MaintenanceWindow:
    return MaintenanceWindow.objects.select_for_update().get(pk=window.pk, customer_id=window.customer_id)


@transaction.atomic
def window_move(
    *,
    actor: User | None,
    window: MaintenanceWindow,
    starts_at: datetime | None,
    ends_at: datetime | None,
    title: str | None = None,
    reason: str | None = None,
    now: datetime | None = None,
) -> MaintenanceWindow:
    """New times (and optionally title and reason) for a planned or proposed window."""
    _check_actor(actor)
    now = now or timezone.now()
    window = _locked(window)
    if window.status == WindowStatus.CANCELLED:
        raise WindowStateError({"status": "A cancelled window cannot be moved."})
    before = _snapshot(window)
    title = window.title if title is None else title
    # A window that has begun may still be lengthened, but not moved into the past.
    _validate(
        customer=window.customer,
        title=title,
        starts_at=starts_at,
        ends_at=ends_at,
        site=window.site,
        assets=list(window.assets.all()),
        recurrence=window.recurrence,
        recurs_until=window.recurs_until,
        allow_past=False,
        now=now,
    )
    if starts_at is None or ends_at is None:  # _validate said so already; for the type checker
        raise ValidationError({"starts_at": "When does the window start?"})
    window.starts_at, window.ends_at, window.title = starts_at, ends_at, title.strip()
    if reason is not None:
        window.reason = reason.strip()
    if window.closed_early_at is not None and window.closed_early_at < starts_at:
        window.closed_early_at = None  # moved past the moment it was closed: that no longer applies
    window.save()
    moved = before != _snapshot(window)
    audit_record(
        actor=actor,
        action="maintenance_window.moved",
        target=window,
        customer=window.customer,
        data={"before": before, "after": _snapshot(window)},
    )
    if moved and window.status == WindowStatus.PLANNED:
        _tell(window, "moved", previous_starts_at=before["starts_at"], previous_ends_at=before["ends_at"])
    _mark_alarms(window, now)
    _announce(window)
    return window


@transaction.atomic
def window_confirm(*, actor: User | None, window: MaintenanceWindow) -> MaintenanceWindow:
    """A proposed window becomes planned (in effect; the customer is told). Safe to call twice."""
    _check_actor(actor)
    window = _locked(window)
    if window.status == WindowStatus.PLANNED:
        return window
    if window.status != WindowStatus.PROPOSED:
        raise WindowStateError({"status": "Only a proposed window can be confirmed."})
    window.status = WindowStatus.PLANNED
    window.save(update_fields=["status", "updated_at"])
    audit_record(
        actor=actor,
        action="maintenance_window.planned",
        target=window,
        customer=window.customer,
        data={**_snapshot(window), "confirmed": True},
    )
    _tell(window, "planned")
    _mark_alarms(window, timezone.now())
    _announce(window)
    return window


@transaction.atomic
def window_cancel(
    *, actor: User | None, window: MaintenanceWindow, now: datetime | None = None
) -> MaintenanceWindow:
    """Cancel a window (it stops being in effect, also for time past). Safe to call twice."""
    _check_actor(actor)
    window = _locked(window)
    if window.status == WindowStatus.CANCELLED:
        return window
    was_planned = window.status == WindowStatus.PLANNED
    window.status = WindowStatus.CANCELLED
    window.cancelled_at = now or timezone.now()
    window.save(update_fields=["status", "cancelled_at", "updated_at"])
    audit_record(actor=actor, action="maintenance_window.cancelled", target=window, customer=window.customer)
    if was_planned:
        _tell(window, "cancelled")
    _announce(window)
    return window


@transaction.atomic
def window_close_early(
    *, actor: User | None, window: MaintenanceWindow, at: datetime | None = None
) -> MaintenanceWindow:
    """End the window (the occurrence running now, for a recurring one) at `at` (default now)."""
    _check_actor(actor)
    window = _locked(window)
    at = at or timezone.now()
    if window.status != WindowStatus.PLANNED:
        raise WindowStateError({"status": "Only a planned window can be closed early."})
    zone = window.customer.time_zone or "UTC"
    if not any(began <= at < ended for began, ended in occurrences(window, at, at + TICK, zone)):
        raise WindowStateError({"status": "The window is not running now."})
    window.closed_early_at = at
    window.save(update_fields=["closed_early_at", "updated_at"])
    audit_record(
        actor=actor,
        action="maintenance_window.closed_early",
        target=window,
        customer=window.customer,
        data={"at": at.isoformat()},
    )
    _announce(window)
    return window
