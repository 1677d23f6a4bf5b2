"""Metering: what a contract used in a period.

Periods are calendar months in the customer's time zone. Usage is the sum of the hourly usage
of the contract's covered assets inside the period, only for the hours each asset was covered
(an hour belongs to the period its start falls in). A contract with `meter_maintenance` off
leaves out the hours whose start lies inside a maintenance window (docs/availability.md,
"Metering and maintenance"). Availability is billing.availability.

Usage is computed for many contracts at once by the database (sums, not rows in Python), so an
invoice run over ten thousand contracts holds a chunk's totals in memory, never usage rows.
"""

from __future__ import annotations

import calendar
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.db.models import F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from billing.models import Contract, ContractAsset
from fleet.maintenance import windows_for_assets
from fleet.models import HourlyUsage
from portal.validation import FIRST_YEAR, LAST_YEAR

PERIOD_RE = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class Period:
    """One calendar month in one time zone, with its bounds in UTC (end exclusive)."""

    label: str  # YYYY-MM
    time_zone: str
    first_day: date
    last_day: date
    start: datetime
    end: datetime

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def hours(self) -> int:
        return int((self.end - self.start).total_seconds() // 3600)

    def previous(self) -> Period:
        first = self.first_day - timedelta(days=1)
        return period_of(f"{first:%Y-%m}", self.time_zone)

    def next(self) -> Period:
        return period_of(f"{self.last_day + timedelta(days=1):%Y-%m}", self.time_zone)


def parse_period(value: str) -> tuple[int, int]:
    """`YYYY-MM` as (year, month); ValueError with a readable message otherwise."""
    match = PERIOD_RE.match(value or "")
    if not match:
        raise ValueError("period must be a month as YYYY-MM, e.g. 2026-10")
    year = int(match.group(1))
    if not FIRST_YEAR <= year <= LAST_YEAR:  # 0000-01, 9999-12: the month's bounds would overflow
        raise ValueError(f"period must be a month from {FIRST_YEAR}-01 to {LAST_YEAR}-12")
    return year, int(match.group(2))


def period_of(label: str, time_zone: str) -> Period:
    year, month = parse_period(label)
    zone = ZoneInfo(time_zone)
    first = date(year, month, 1)
    last = date(year, month, calendar.monthrange(year, month)[1])
    start = datetime(year, month, 1, tzinfo=zone).astimezone(UTC)
    following = last + timedelta(days=1)
    end = datetime(following.year, following.month, 1, tzinfo=zone).astimezone(UTC)
    return Period(label, time_zone, first, last, start, end)


def period_containing(moment: datetime, time_zone: str) -> Period:
    return period_of(f"{moment.astimezone(ZoneInfo(time_zone)):%Y-%m}", time_zone)


def local_midnight(day: date, time_zone: str) -> datetime:
    """The start of `day` in `time_zone`, as aware UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(time_zone)).astimezone(UTC)


def active_days(contract: Contract, period: Period) -> int:
    """Days of `period` the contract runs (start and end dates inclusive); 0 when none."""
    first = max(contract.start_date, period.first_day)
    last = min(contract.end_date or period.last_day, period.last_day)
    return max((last - first).days + 1, 0)


def covered_hours(contract_ids: Iterable[object], period: Period) -> QuerySet[HourlyUsage]:
    """Hourly usage rows of the contracts' assets inside the period and their coverage.

    The coverage conditions sit in one `filter()` call, so they apply to the same coverage
    row (one join), and a row counts once per contract that covered it at that hour. On
    PostgreSQL the sums read the covering index `usage_asset_hour_covering` (billing migration
    0002) only: (asset_id, hour) with metric and quantity, no heap fetch per usage row.
    """
    ids: list[Any] = list(contract_ids)
    return HourlyUsage.objects.filter(
        Q(asset__coverages__covered_until__isnull=True) | Q(hour__lt=F("asset__coverages__covered_until")),
        _unmetered_maintenance(ids, period),
        asset__coverages__contract_id__in=ids,
        hour__gte=F("asset__coverages__covered_from"),
        hour__range=(period.start, period.end - timedelta(microseconds=1)),
    )


def _unmetered_maintenance(contract_ids: list[Any], period: Period) -> Q:
    """A condition leaving out the hours inside maintenance windows of contracts that do not
    meter maintenance: an hour is left out when its start lies in a window (hour granularity,
    docs/availability.md). Empty (matches all) when no such contract has a window."""
    coverages = list(
        ContractAsset.objects.filter(
            contract_id__in=contract_ids, contract__meter_maintenance=False, covered_from__lt=period.end
        )
        .filter(Q(covered_until__isnull=True) | Q(covered_until__gt=period.start))
        .values_list("asset_id", "covered_from", "covered_until")
    )
    if not coverages:
        return Q()
    windows = windows_for_assets({a for a, _, _ in coverages}, period.start, period.end)
    left_out = Q()
    for asset_id, covered_from, covered_until in coverages:
        for began, ended in windows.get(asset_id, ()):
            # Clipped to this coverage, so another contract covering the asset at another time
            # (and metering maintenance) keeps its hours.
            began, ended = max(began, covered_from), min(ended, covered_until or ended)
            if ended > began:
                left_out |= Q(asset_id=asset_id, hour__gte=began, hour__lt=ended)
    return ~left_out if left_out else Q()


def quantities(contract_ids: Iterable[object], period: Period) -> dict[str, dict[str, Decimal]]:
    """{contract id: {metric: quantity}} for contracts whose customers share `period`'s zone."""
    result: dict[str, dict[str, Decimal]] = defaultdict(dict)
    rows = (
        covered_hours(contract_ids, period)
        .values("asset__coverages__contract_id", "metric")
        .annotate(quantity=Sum("quantity"))
        .order_by()
    )
    for row in rows:
        result[str(row["asset__coverages__contract_id"])][row["metric"]] = Decimal(row["quantity"])
    return result


def daily_quantities(contract: Contract, period: Period) -> dict[str, list[tuple[date, Decimal]]]:
    """{metric: [(local day, quantity), ...]} of one contract's period, for its usage chart."""
    rows = (
        covered_hours([contract.pk], period)
        .annotate(day=TruncDate("hour", tzinfo=ZoneInfo(period.time_zone)))
        .values("metric", "day")
        .annotate(quantity=Sum("quantity"))
        .order_by("metric", "day")
    )
    result: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
    for row in rows:
        result[row["metric"]].append((row["day"], Decimal(row["quantity"])))
    return result


def hourly_rows(contract: Contract, period: Period, metric: str) -> QuerySet[HourlyUsage]:
    """The hourly usage behind one meter of one contract's period: billing provenance."""
    return (
        covered_hours([contract.pk], period)
        .filter(metric=metric)
        .select_related("asset")
        .order_by("hour", "asset__serial_number")
    )
