"""When assets are in maintenance: the one reading of maintenance windows that availability,
alarms, SLA clocks, metering and health evaluation all share (docs/availability.md).

    intervals = windows_for_assets([asset.pk], period.start, period.end)
    intervals[asset.pk]            # [(start, end), ...] merged, clipped to the range
    in_maintenance(asset.pk, now)  # True inside a window

A window is in effect when it is `planned` (a `proposed` one — what a prediction's ticket
suggests — and a `cancelled` one are not). It covers its listed assets, else every asset of
its site, else every asset of its customer. A recurring window repeats its span in the
customer's time zone (so a weekly Monday 06:00–10:00 visit stays at 06:00 local across a
daylight-saving change) until `recurs_until` (inclusive, a local date). `closed_early_at`
ends the occurrence it falls in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import DateTimeField, ExpressionWrapper, F, OuterRef, Q, Value
from django.db.models.functions import Cast

from fleet.models import Asset, MaintenanceWindow, Recurrence, WindowStatus

Interval = tuple[datetime, datetime]
TICK = timedelta(microseconds=1)

STEPS: dict[str, relativedelta] = {
    Recurrence.DAILY: relativedelta(days=1),
    Recurrence.WEEKLY: relativedelta(weeks=1),
    Recurrence.MONTHLY: relativedelta(months=1),
}
# The longest each step lasts (a month of 31 days), for skipping ahead in `occurrences`.
LONGEST_STEP: dict[str, timedelta] = {
    Recurrence.DAILY: timedelta(days=1),
    Recurrence.WEEKLY: timedelta(weeks=1),
    Recurrence.MONTHLY: timedelta(days=31),
}


def occurrences(
    window: MaintenanceWindow,
    start: datetime,
    end: datetime,
    zone: str = "UTC",
    *,
    in_effect_only: bool = True,
) -> Iterator[Interval]:
    """The spans of `window` that overlap [start, end), in time order, unclipped (those of a
    proposed or cancelled window too with `in_effect_only=False`: for showing it)."""
    if in_effect_only and window.status != WindowStatus.PLANNED:
        return
    step = STEPS.get(window.recurrence)
    local_start = window.starts_at.astimezone(ZoneInfo(zone))
    length = window.ends_at - window.starts_at
    index = 0
    if step is not None and start - length > window.starts_at:
        # Skip the repetitions that ended before `start` without walking them (a daily window
        # of three years would take a thousand steps on every sweep). Two steps of margin cover
        # any change of the zone's offset (at most 26 h); the walk below still checks each.
        index = max(0, (start - length - window.starts_at) // LONGEST_STEP[window.recurrence] - 2)
    while True:
        # Wall-clock arithmetic in the customer's zone: 06:00 local stays 06:00 local.
        local = local_start + step * index if step is not None else local_start
        if step is not None and window.recurs_until is not None and local.date() > window.recurs_until:
            return
        began = local.astimezone(UTC)
        ended = began + length
        if window.closed_early_at is not None and began <= window.closed_early_at < ended:
            ended = window.closed_early_at
        if began >= end:
            return
        if ended > start and ended > began:
            yield began, ended
        if step is None:
            return
        index += 1


def _merge(spans: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for began, ended in sorted(spans):
        if merged and began <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], ended))
        else:
            merged.append((began, ended))
    return merged


def windows_for_assets(asset_ids: Iterable[Any], start: datetime, end: datetime) -> dict[Any, list[Interval]]:
    """{asset id: merged maintenance intervals within [start, end)} for every given asset (an
    asset in no window maps to [])."""
    ids = list(asset_ids)
    places = list(
        Asset.objects.filter(pk__in=ids).values_list("pk", "customer_id", "site_id", "customer__time_zone")
    )
    found = windows_for_places(places, start, end)
    return {pk: found.get(pk, []) for pk in ids}


def windows_for_places(
    assets: list[tuple[Any, Any, Any, str]], start: datetime, end: datetime
) -> dict[Any, list[Interval]]:
    """`windows_for_assets` for assets already read as (id, customer id, site id, the
    customer's time zone): the fleet overview has them in its page's rows."""
    customers = {customer for _, customer, _, _ in assets}
    # Each window's listed assets as an array of ids in the same query (not a prefetch: a
    # second query and an Asset a listed id), and only the columns the stepping reads.
    listed = MaintenanceWindow.assets.through.objects.filter(maintenancewindow_id=OuterRef("pk"))
    windows = list(
        MaintenanceWindow.objects.filter(customer_id__in=customers, status=WindowStatus.PLANNED)
        .filter(starts_at__lt=end)
        .filter(Q(ends_at__gt=start) | ~Q(recurrence=Recurrence.NONE))
        .only(*STEPPING, "customer_id", "site_id")
        .annotate(listed_ids=ArraySubquery(listed.values("asset_id")))
    )
    zones = {customer: zone for _, customer, _, zone in assets}
    spans: dict[Any, list[Interval]] = defaultdict(list)
    for window in windows:
        listed_ids = set(window.listed_ids)
        covered = [
            pk
            for pk, customer, site, _ in assets
            if customer == window.customer_id
            and (pk in listed_ids if listed_ids else (window.site_id is None or site == window.site_id))
        ]
        if not covered:
            continue
        for began, ended in occurrences(window, start, end, zones.get(window.customer_id) or "UTC"):
            clipped = (max(began, start), min(ended, end))
            for pk in covered:
                spans[pk].append(clipped)
    return {pk: _merge(spans.get(pk, ())) for pk, _, _, _ in assets}


def in_maintenance(asset_id: Any, at: datetime) -> bool:
    """Is the asset inside a maintenance window at `at`?"""
    return bool(windows_for_assets([asset_id], at, at + TICK)[asset_id])


def covering(asset: Asset) -> Q:
    """The windows that cover `asset` (by listing it, its site or its whole customer), as a
    filter on MaintenanceWindow; combine with the customer's scope and `.distinct()`."""
    whole = Q(assets__isnull=True) & (Q(site__isnull=True) | Q(site_id=asset.site_id))
    return Q(customer_id=asset.customer_id) & (Q(assets=asset) | whole)


def covered(window: MaintenanceWindow) -> Q:
    """The assets `window` covers (its listed ones, else its site's, else its customer's), as a
    filter on Asset: the other way round from `covering`. One query for the listed ones."""
    listed = list(window.assets.values_list("pk", flat=True))
    if listed:
        return Q(customer_id=window.customer_id, pk__in=listed)
    if window.site_id is not None:
        return Q(customer_id=window.customer_id, site_id=window.site_id)
    return Q(customer_id=window.customer_id)


STEPPING = ("starts_at", "ends_at", "recurrence", "recurs_until", "status", "closed_early_at")


def boundaries(since: datetime, until: datetime) -> list[tuple[MaintenanceWindow, list[datetime]]]:
    """The windows in effect whose span began or ended in (since, until] — each occurrence of a
    recurring one, an end brought forward by `closed_early_at` — with those instants, for
    every customer (each window comes with its customer). An instant at or before the
    window's last write (`updated_at`) is left out: that write told the pages already
    (fleet.windows announces every write), e.g. an emergency window's start.

    One query over the windows that can have such an instant: one-off windows by their start,
    end or early close in the range; recurring ones that have begun and whose last repetition
    (`recurs_until`, a local date, plus a span and two days for any zone) ends after `since`.
    """
    once = Q(recurrence=Recurrence.NONE) & (
        Q(starts_at__gt=since, starts_at__lte=until)
        | Q(ends_at__gt=since, ends_at__lte=until)
        | Q(closed_early_at__gt=since, closed_early_at__lte=until)
    )
    last_end = ExpressionWrapper(
        Cast("recurs_until", DateTimeField()) + (F("ends_at") - F("starts_at")) + Value(timedelta(days=2)),
        output_field=DateTimeField(),
    )
    repeating = (
        ~Q(recurrence=Recurrence.NONE)
        & Q(starts_at__lte=until)
        & (Q(recurs_until__isnull=True) | Q(last_end__gt=since))
    )
    windows = (
        MaintenanceWindow.objects.filter(status=WindowStatus.PLANNED)
        .alias(last_end=last_end)
        .filter(once | repeating)
        .select_related("customer")
        # What the stepping and the message need: a sweep may load thousands of rows.
        .only(*STEPPING, "customer_id", "site_id", "updated_at", "customer__time_zone")
        .order_by("starts_at", "pk")
    )
    found: list[tuple[MaintenanceWindow, list[datetime]]] = []
    for window in windows:
        after = max(since, window.updated_at)
        instants = sorted(
            {
                instant
                for span in occurrences(window, since, until + TICK, window.customer.time_zone or "UTC")
                for instant in span
                if after < instant <= until
            }
        )
        if instants:
            found.append((window, instants))
    return found
