"""Availability as the contract defines it (docs/availability.md).

    covered   the time each covered asset was under the contract in the period (up to now)
    down      time in a status of the contract's `down_states` (offline always counts)
    excluded  maintenance windows (`exclude_maintenance`) and stops support marked as the
              customer's (`exclude_customer_stops`), merged per asset
    availability = (covered − excluded − (down − down∩excluded)) / (covered − excluded)

in whole seconds, as a percentage truncated (never rounded up) to four decimals, so rounding
never lifts a measured availability over a credit threshold. None when nothing measurable
was covered (no coverage yet, or all of it excluded): no service credit.

`measure()` is the pure core (intervals in, figures out, no database); `statements()` reads
the status history, windows (fleet.maintenance) and exclusions for many contracts at once, and
`percentages()` is what the invoice run and the usage projection ask for.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.db.models import OuterRef, Q, Subquery

from billing.metering import Period, active_days
from billing.models import Contract, ContractAsset
from billing.rating import LineKind, credit_percent, rate_period
from fleet.maintenance import occurrences, windows_for_assets
from fleet.models import (
    Asset,
    AssetStatus,
    AssetStatusChange,
    MaintenanceWindow,
    StatusExclusion,
    WindowStatus,
)

Interval = tuple[datetime, datetime]
ZERO = timedelta(0)
ALWAYS_DOWN = (AssetStatus.OFFLINE.value,)


def down_states_of(contract: Contract) -> frozenset[str]:
    """The contract's down states, offline always among them."""
    return frozenset([*(contract.down_states or []), *ALWAYS_DOWN])


# The pure core ---------------------------------------------------------------------------


def merge(spans: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for began, ended in sorted(spans):
        if ended <= began:
            continue
        if merged and began <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], ended))
        else:
            merged.append((began, ended))
    return merged


def clip(spans: Iterable[Interval], start: datetime, end: datetime) -> list[Interval]:
    return [(max(a, start), min(b, end)) for a, b in spans if min(b, end) > max(a, start)]


def length(spans: Iterable[Interval]) -> timedelta:
    return sum((b - a for a, b in spans), ZERO)


def overlap(spans: Sequence[Interval], others: Sequence[Interval]) -> list[Interval]:
    """The parts of `spans` inside `others` (both merged)."""
    return [piece for began, ended in spans for piece in clip(others, began, ended)]


def status_spans(
    status_at_start: str | None, changes: Iterable[tuple[str, datetime]], start: datetime, end: datetime
) -> list[tuple[str, datetime, datetime]]:
    """The status history as (status, from, to) spans covering [start, end); time before the first
    known status is left out (nothing was reported, so nothing is down)."""
    spans: list[tuple[str, datetime, datetime]] = []
    status, since = status_at_start, start
    for new_status, at in changes:
        if at >= end:
            break
        at = max(at, start)
        if status is not None and at > since:
            spans.append((status, since, at))
        status, since = new_status, at
    if status is not None and end > since:
        spans.append((status, since, end))
    return spans


def minutes(span: timedelta) -> int:
    """Whole minutes, rounded down: how the page and the PDF show a span."""
    return int(span.total_seconds() // 60)


def percent(
    covered: timedelta, excluded: timedelta, down: timedelta, down_excluded: timedelta
) -> Decimal | None:
    """The availability % from the four sums, whole seconds, truncated to four decimals."""
    measured = Decimal(int(covered.total_seconds())) - Decimal(int(excluded.total_seconds()))
    if measured <= 0:
        return None
    lost = Decimal(int(down.total_seconds())) - Decimal(int(down_excluded.total_seconds()))
    return (100 * (measured - lost) / measured).quantize(Decimal("0.0001"), rounding=ROUND_DOWN)


# The statement ---------------------------------------------------------------------------


@dataclass
class DownInterval:
    asset_id: Any
    serial_number: str
    status: str
    start: datetime
    end: datetime
    excluded: timedelta = ZERO
    reasons: list[str] = field(default_factory=list)  # why parts were excluded

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    @property
    def counted(self) -> timedelta:
        return self.duration - self.excluded

    @property
    def duration_minutes(self) -> int:
        return minutes(self.duration)

    @property
    def excluded_minutes(self) -> int:
        return minutes(self.excluded)


@dataclass
class Exclusion:
    asset_id: Any
    serial_number: str
    kind: str  # "maintenance" or "customer"
    title: str  # the window's title or the stop's reason
    start: datetime
    end: datetime
    applies: bool  # False when the contract's terms do not leave this kind out

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    @property
    def duration_minutes(self) -> int:
        return minutes(self.duration)


@dataclass
class Statement:
    contract: Contract
    period: Period
    until: datetime  # the measured range ends here (the period end, or now)
    down_states: list[str]
    covered: timedelta = ZERO
    excluded: timedelta = ZERO
    down: timedelta = ZERO
    down_excluded: timedelta = ZERO
    intervals: list[DownInterval] = field(default_factory=list)
    exclusions: list[Exclusion] = field(default_factory=list)

    @property
    def availability(self) -> Decimal | None:
        return percent(self.covered, self.excluded, self.down, self.down_excluded)

    @property
    def down_counted(self) -> timedelta:
        return self.down - self.down_excluded

    @property
    def measured(self) -> timedelta:
        return self.covered - self.excluded

    @property
    def target(self) -> Decimal | None:
        return self.contract.uptime_target

    @property
    def credit_percent(self) -> Decimal:
        return credit_percent(self.availability, self.target, self.contract.credit_schedule())

    @property
    def currency(self) -> str:
        return str(self.contract.plan.currency)

    @property
    def credit_amount(self) -> Decimal:
        """The service credit line the invoice run writes (≤ 0), from the same rating code."""
        days = active_days(self.contract, self.period)
        if not days:
            return Decimal("0")
        lines = rate_period(
            self.contract.pricing(), {}, active_days=days, days_in_period=self.period.days,
            uptime=self.availability, uptime_target=self.target,
            credit_schedule=self.contract.credit_schedule(),
        )  # fmt: skip
        return sum((x.amount for x in lines if x.kind == LineKind.SERVICE_CREDIT), Decimal("0"))

    # Minutes for the page's `minutes` filter (the figures themselves count whole seconds).
    @property
    def covered_minutes(self) -> int:
        return minutes(self.covered)

    @property
    def excluded_minutes(self) -> int:
        return minutes(self.excluded)

    @property
    def down_minutes(self) -> int:
        return minutes(self.down)

    @property
    def down_counted_minutes(self) -> int:
        return minutes(self.down_counted)


def _window_titles(
    customer_ids: set[Any], start: datetime, end: datetime
) -> list[tuple[MaintenanceWindow, set[Any]]]:
    """Planned windows overlapping the range with the assets they list (empty: site/customer)."""
    windows = MaintenanceWindow.objects.filter(
        customer_id__in=customer_ids, status=WindowStatus.PLANNED, starts_at__lt=end
    ).prefetch_related("assets")
    return [(w, {a.pk for a in w.assets.all()}) for w in windows]


def statements(contracts: Sequence[Contract], period: Period, *, now: datetime) -> dict[str, Statement]:
    """{contract id: Statement} for contracts whose customers share `period`'s zone, up to `now`.

    Reads: the coverages, each asset's status when the period began and its changes inside it,
    maintenance windows through fleet.maintenance.windows_for_assets, customer stops.
    """
    until = min(period.end, now)
    result = {
        str(c.pk): Statement(contract=c, period=period, until=until, down_states=sorted(down_states_of(c)))
        for c in contracts
    }
    if until <= period.start:
        return result
    coverages = list(
        ContractAsset.objects.filter(contract_id__in=[c.pk for c in contracts], covered_from__lt=until)
        .filter(Q(covered_until__isnull=True) | Q(covered_until__gt=period.start))
        .values_list("contract_id", "asset_id", "covered_from", "covered_until")
    )
    asset_ids = {asset_id for _, asset_id, _, _ in coverages}
    # One row per asset: its status when the period began, its serial number and site.
    rows = list(
        Asset.objects.filter(pk__in=asset_ids)
        .annotate(
            status_at_start=Subquery(
                AssetStatusChange.objects.filter(asset_id=OuterRef("pk"), at__lt=period.start)
                .order_by("-at")
                .values("status")[:1]
            )
        )
        .values_list("pk", "status_at_start", "serial_number", "site_id")
    )
    assets = {pk: status for pk, status, _, _ in rows}
    serials = {pk: serial for pk, _, serial, _ in rows}
    site_of = {pk: site for pk, _, _, site in rows}
    changes: dict[Any, list[tuple[str, datetime]]] = defaultdict(list)
    for asset_id, status, at in (
        AssetStatusChange.objects.filter(asset_id__in=asset_ids, at__gte=period.start, at__lt=until)
        .order_by("asset_id", "at")
        .values_list("asset_id", "status", "at")
        .iterator(chunk_size=5000)
    ):
        changes[asset_id].append((status, at))
    history = {a: status_spans(assets.get(a), changes.get(a, ()), period.start, until) for a in asset_ids}
    windows = windows_for_assets(asset_ids, period.start, until) if asset_ids else {}
    stops: dict[Any, list[tuple[Interval, str]]] = defaultdict(list)
    for asset_id, began, ended, reason in StatusExclusion.objects.filter(
        asset_id__in=asset_ids, starts_at__lt=until, ends_at__gt=period.start
    ).values_list("asset_id", "starts_at", "ends_at", "reason"):
        stops[asset_id].append(((max(began, period.start), min(ended, until)), reason))
    titled = (
        _window_titles({c.customer_id for c in contracts}, period.start, until)
        if any(windows.values())
        else []
    )

    def window_title(asset_id: Any, span: Interval) -> str:
        for window, listed in titled:
            if listed and asset_id not in listed:
                continue
            if not listed and window.site_id is not None and site_of.get(asset_id) != window.site_id:
                continue
            zone = period.time_zone
            if any(b > span[0] and a < span[1] for a, b in occurrences(window, span[0], span[1], zone)):
                return window.title
        return "Maintenance window"

    for contract_id, asset_id, covered_from, covered_until in coverages:
        statement = result[str(contract_id)]
        contract = statement.contract
        start = max(covered_from, period.start)
        end = min(covered_until or until, until)
        if end <= start:
            continue
        serial = serials.get(asset_id, "")
        down_states = set(statement.down_states)
        labelled: list[tuple[Interval, str, str]] = []  # (span, kind, title)
        for span in clip(windows.get(asset_id, ()), start, end):
            labelled.append((span, "maintenance", window_title(asset_id, span)))
        for (began, ended), reason in stops.get(asset_id, ()):
            for span in clip([(began, ended)], start, end):
                labelled.append((span, "customer", reason))
        applies = {"maintenance": contract.exclude_maintenance, "customer": contract.exclude_customer_stops}
        for span, kind, title in labelled:
            statement.exclusions.append(
                Exclusion(asset_id, serial, kind, title, *span, applies=applies[kind])
            )
        excluded = merge(span for span, kind, _ in labelled if applies[kind])
        statement.covered += end - start
        statement.excluded += length(excluded)
        for status, began, ended in history[asset_id]:
            if status not in down_states:
                continue
            for piece in clip([(began, ended)], start, end):
                inside = overlap([piece], excluded)
                interval = DownInterval(asset_id, serial, status, *piece, excluded=length(inside))
                interval.reasons = sorted(
                    {
                        title
                        for span, kind, title in labelled
                        if applies[kind] and span[1] > piece[0] and span[0] < piece[1]
                    }
                )
                statement.intervals.append(interval)
                statement.down += interval.duration
                statement.down_excluded += interval.excluded
    for statement in result.values():
        statement.intervals.sort(key=lambda i: (i.start, i.serial_number))
        statement.exclusions.sort(key=lambda e: (e.start, e.serial_number))
    return result


def percentages(contracts: Sequence[Contract], period: Period, *, now: datetime) -> dict[str, Decimal | None]:
    """{contract id: availability %} (None: nothing measurable yet) — what invoices credit."""
    return {key: s.availability for key, s in statements(contracts, period, now=now).items()}


def statement(contract: Contract, period: Period, *, now: datetime) -> Statement:
    return statements([contract], period, now=now)[str(contract.pk)]
