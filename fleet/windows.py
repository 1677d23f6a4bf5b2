"""Writes of maintenance windows: plan, move, cancel, confirm a proposed one, open an
emergency window now, close one early. Every write is audited; the customer's users are
e-mailed (through the outbox, after the commit) when a window they are affected by is
planned, moved or cancelled. When a window is in effect is `fleet.maintenance`'s business.

Who may: provider staff who work tickets (support, operators). Customers only read.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from celery import shared_task
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.utils import timezone

from fleet.live import publish_after_commit, window_messages
from fleet.maintenance import TICK, boundaries, covering, occurrences
from fleet.models import Asset, MaintenanceWindow, Recurrence, Site, WindowStatus
from portal import formatting, live, outbox, redis_conn
from portal.links import portal_url
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


# The clock: windows that begin or end on their own ----------------------------------------------

# The last instant the boundary sweep covered (ISO 8601), next to the live messages it guards.
SWEPT_KEY = "fleet:maintenance:swept"
# Without a stored instant (the first sweep, or a Redis that lost its data) the sweep looks this
# far back: twice the beat's 30 s, so a boundary is told late rather than never.
FIRST_LOOKBACK = timedelta(seconds=60)
# After a long stop of beat, boundaries older than this are not told any more: the query stays
# bounded, and a page open that long has reconnected and fetched again since.
CATCH_UP = timedelta(hours=1)
# Move the stored instant from ARGV[1] ("" for none) to ARGV[2], only if nobody moved it first.
_ADVANCE = """
if (redis.call('GET', KEYS[1]) or '') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


def _swept(stored: str) -> datetime | None:
    """The stored instant; None for none, or for what is no aware instant (the key written by
    hand): the sweep then looks FIRST_LOOKBACK back and writes a good one."""
    try:
        swept = datetime.fromisoformat(stored)
    except ValueError:
        return None
    return swept if swept.tzinfo is not None else None


def window_boundaries_announce(*, now: datetime | None = None) -> int:
    """Tell live pages about every window that began or ended since the last sweep (beat,
    `fleet.maintenance_boundaries`, every 30 s): one `maintenance.changed` to the window's
    customer (and staff) per window and sweep, as a user's change of it sends. Returns how many
    windows were told. docs/maintenance.md, "When a window begins or ends".

    Each boundary is told once: the sweep covers (last swept instant, now], and moves that
    instant forward with a compare-and-set before it publishes, so a second sweep (run twice
    by beat, or at the same time on another worker) finds nothing left to tell. A failed
    publish moves it back for the next sweep. The instant lives in Redis rather than in a table:
    a sweep that cannot reach Redis can publish nothing either and fails before anything
    moves; no migration; and losing the key only makes the next sweep look FIRST_LOOKBACK back,
    which at worst tells a page twice to fetch its parts again (harmless).
    """
    now = now or timezone.now()
    client = redis_conn.client(socket_timeout=2, socket_connect_timeout=2)
    try:
        stored = client.get(SWEPT_KEY)
        previous = stored.decode() if isinstance(stored, bytes) else (stored or "")
        since = max(_swept(previous) or now - FIRST_LOOKBACK, now - CATCH_UP)
        if since >= now:  # another worker's clock ran ahead, or the same instant again
            return 0
        passed = boundaries(since, now)
        if not client.eval(_ADVANCE, 1, SWEPT_KEY, previous, now.isoformat()):
            return 0  # a concurrent sweep covered this span
        messages = [m for window, _ in passed for m in window_messages(window.customer_id, window.pk)]
        try:
            live.publish_many(messages)
        except Exception:
            client.eval(_ADVANCE, 1, SWEPT_KEY, now.isoformat(), previous)  # the next sweep tells
            raise
        return len(passed)
    finally:
        client.close()


# E-mail to the customer's users ---------------------------------------------------------------


def recipients(window: MaintenanceWindow) -> list[User]:
    """The window's own customer's active users who may see the fleet — nobody else."""
    people = User.objects.filter(customer_id=window.customer_id, is_active=True).select_related("customer")
    return sorted((p for p in people if can(p, Capability.VIEW_FLEET) and p.email), key=lambda p: p.email)


def _when_iso(value: str) -> str:
    return formatting.when(datetime.fromisoformat(value)) if value else ""


def notify(*, window_id: str, change: str, previous_starts_at: str = "", previous_ends_at: str = "") -> int:
    """E-mail each of the window's customer's users, in their own zone and locale. Returns how
    many were sent. At least once (the outbox): a redelivery sends again."""
    window = (
        MaintenanceWindow.objects.select_related("customer", "site")
        .prefetch_related("assets")
        .filter(pk=window_id)
        .first()
    )
    if window is None:
        return 0
    if change in ("planned", "moved") and window.status != WindowStatus.PLANNED:
        return 0  # cancelled (or never confirmed) before the mail went out: nothing to announce
    link = portal_url("maintenance_calendar")
    subjects = {
        "planned": "Maintenance planned: {title}",
        "moved": "Maintenance moved: {title}",
        "cancelled": "Maintenance cancelled: {title}",
    }
    sent = 0
    for person in recipients(window):
        # Times and figures as the recipient reads them on the pages: their zone and locale.
        with formatting.reader(locale=person.display_locale, time_zone=person.display_time_zone) as zone:
            context: dict[str, Any] = {
                "person": person,
                "window": window,
                "change": change,
                "link": link,
                "zone": zone.key,
                "starts": formatting.when(window.starts_at),
                "ends": formatting.when(window.ends_at),
                "previous_starts": _when_iso(previous_starts_at),
                "previous_ends": _when_iso(previous_ends_at),
                "scope": scope_label(window),
            }
            body = render_to_string("fleet/email/window.txt", context)
        send_mail(
            subject=subjects.get(change, "Maintenance: {title}").format(title=window.title),
            message=body,
            from_email=None,
            recipient_list=[person.email],
        )
        sent += 1
    return sent


def scope_label(window: MaintenanceWindow) -> str:
    """What the window covers, in words (uses prefetched assets where there are)."""
    listed = list(window.assets.all())
    if listed:
        return ", ".join(a.name for a in listed)
    if window.site_id is not None and window.site is not None:
        return f"every machine at {window.site.name}"
    return "every machine"


@shared_task(name="fleet.window_notify", acks_late=True)
def window_notify(
    window_id: str, change: str, previous_starts_at: str = "", previous_ends_at: str = ""
) -> int:
    return notify(
        window_id=window_id,
        change=change,
        previous_starts_at=previous_starts_at,
        previous_ends_at=previous_ends_at,
    )
