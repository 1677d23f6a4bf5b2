"""Reads of the fleet, scoped by the acting user, and the filters of its lists.

The FilterSets here are the one definition of a list's ?filters: the API list (through
`portal.api.base.ListFilterBackend`, which answers bad input 400) and the page (through
`portal.filters.page_filters`, which shows the error) both use them.
"""

from __future__ import annotations

import json
import uuid
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import django_filters
from django.contrib.postgres.expressions import ArraySubquery
from django.core.paginator import Page, Paginator
from django.db.models import Count, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, JSONObject, TruncDay, TruncMonth
from django.urls import reverse
from django.utils import timezone

from fleet.maintenance import TICK, windows_for_places
from fleet.models import (
    ACTIVE_ALARM_STATES,
    Alarm,
    AlarmState,
    Asset,
    AssetModel,
    AssetStatus,
    Device,
    DeviceCredential,
    HourlyUsage,
    ImplausibleReading,
    MetricDefinition,
    MetricKind,
    RiskLevel,
    Severity,
    Site,
)
from fleet.templatetags.fleet_tags import STATUS_BADGE
from fleet.templatetags.health_tags import RISK_BADGES
from portal import formatting
from portal.models import User
from portal.validation import is_uuid


def site_list(*, actor: User, search: str = "") -> QuerySet[Site]:
    sites = Site.objects.visible_to(actor).select_related("customer")
    if search:
        sites = sites.filter(name__icontains=search)
    return sites.order_by("customer__name", "name")


def asset_model_list(*, actor: User) -> QuerySet[AssetModel]:
    """The provider's catalogue (not tenant data): every fleet-viewing role may read it."""
    return AssetModel.objects.visible_to(actor).prefetch_related(
        Prefetch("metrics", MetricDefinition.objects.order_by("code")), "alarm_rules"
    )


def asset_list(*, actor: User) -> QuerySet[Asset]:
    """Assets the actor may see, by customer and name; narrow with `AssetFilter`."""
    return (
        Asset.objects.visible_to(actor)
        .select_related("site", "model", "customer")
        .order_by("customer__name", "name")
    )


class AssetFilter(django_filters.FilterSet):
    site = django_filters.UUIDFilter(field_name="site_id", help_text="Only this site's assets")
    status = django_filters.ChoiceFilter(choices=AssetStatus.choices)
    model = django_filters.CharFilter(method="filter_model", help_text="Asset model code or id")
    q = django_filters.CharFilter(method="filter_search", help_text="Search name and serial number")
    sort = django_filters.ChoiceFilter(
        choices=[("risk", "Risk, worst first")], method="sort_by",
        help_text="risk: lowest health score first (docs/health.md); assets never evaluated count as healthy",
    )  # fmt: skip

    class Meta:
        model = Asset
        fields = ["site", "status", "model", "q", "sort"]

    def sort_by(self, assets: QuerySet[Asset], name: str, value: str) -> QuerySet[Asset]:
        # The risk level is read from the score, so the score orders both; never evaluated = 100.
        health = Coalesce(F("health__score"), Value(100))
        return assets.order_by(health.asc(), "customer__name", "name", "pk")

    def filter_model(self, assets: QuerySet[Asset], name: str, value: str) -> QuerySet[Asset]:
        return assets.filter(
            Q(model__code=value) | Q(model_id=value) if is_uuid(value) else Q(model__code=value)
        )

    def filter_search(self, assets: QuerySet[Asset], name: str, value: str) -> QuerySet[Asset]:
        value = value.strip()
        if not value:
            return assets
        return assets.filter(Q(name__icontains=value) | Q(serial_number__icontains=value))


def alarm_list(*, actor: User) -> QuerySet[Alarm]:
    """Alarms of the assets the actor may see, newest first; narrow with `AlarmFilter`."""
    return (
        Alarm.objects.visible_to(actor)
        .select_related("asset", "customer", "acknowledged_by", "cleared_by")
        .order_by("-raised_at")
    )


class AlarmFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(
        choices=[("active", "Active (raised or acknowledged)"), *AlarmState.choices],
        method="filter_state",
    )
    severity = django_filters.ChoiceFilter(choices=Severity.choices)
    asset = django_filters.UUIDFilter(field_name="asset_id")
    customer = django_filters.UUIDFilter(field_name="customer_id", help_text="Staff: one customer's alarms")

    class Meta:
        model = Alarm
        fields = ["state", "severity", "asset", "customer"]

    def filter_state(self, alarms: QuerySet[Alarm], name: str, value: str) -> QuerySet[Alarm]:
        if value == "active":
            return alarms.filter(state__in=ACTIVE_ALARM_STATES)
        return alarms.filter(state=value)


def implausible_reading_list(*, actor: User) -> QuerySet[ImplausibleReading]:
    """Flagged counter readings of the assets the actor may see, newest first."""
    return (
        ImplausibleReading.objects.visible_to(actor)
        .select_related("asset", "decided_by")
        .order_by("-ts", "-pk")
    )


class ImplausibleReadingFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ImplausibleReading.Status.choices)
    asset = django_filters.UUIDFilter(field_name="asset_id")
    metric = django_filters.CharFilter(field_name="metric")
    customer = django_filters.UUIDFilter(field_name="customer_id", help_text="Staff: one customer's readings")

    class Meta:
        model = ImplausibleReading
        fields = ["status", "asset", "metric", "customer"]


def device_list(*, actor: User) -> QuerySet[Device]:
    return (
        Device.objects.visible_to(actor)
        .select_related("asset")
        .prefetch_related(Prefetch("credentials", DeviceCredential.objects.order_by("-created_at")))
    )


TRUNC = {"day": TruncDay, "month": TruncMonth}


def usage_series(
    *, asset: Asset, metric: str, start: datetime | None, end: datetime | None, resolution: str
) -> dict[str, Any]:
    """Counter usage of one asset: hourly, or summed by day / month in the customer's zone."""
    zone = zoneinfo.ZoneInfo(asset.customer.time_zone)
    end = end or timezone.now()
    start = start or end - timedelta(days=7)
    rows = HourlyUsage.objects.for_customer(asset.customer_id).filter(
        asset=asset, metric=metric, hour__gte=start, hour__lt=end
    )
    points: list[dict[str, Any]]
    if resolution == "hour":
        points = [{"period": r.hour, "quantity": r.quantity} for r in rows.order_by("hour")]
    else:
        grouped = (
            rows.annotate(period=TRUNC[resolution]("hour", tzinfo=zone))
            .values("period")
            .annotate(quantity=Sum("quantity"))
            .order_by("period")
        )
        points = [{"period": g["period"], "quantity": g["quantity"]} for g in grouped]
    total: Decimal = sum((Decimal(p["quantity"]) for p in points), Decimal("0"))
    unit = asset.model.metrics.filter(code=metric).values_list("unit", flat=True).first() or ""
    return {
        "metric": metric,
        "unit": unit,
        "resolution": resolution,
        "time_zone": str(zone),
        "total": total,
        "points": points,
    }


OVERVIEW_PAGE_SIZE = 50
OVERVIEW_GAUGES = 3  # the values column: the first gauges of the asset's model


def fleet_overview(*, actor: User, assets: QuerySet[Asset], page: str | None = None) -> dict[str, Any]:
    """The overview page's data in a constant number of queries, whatever the fleet's size.

    `assets` is a filtered `asset_list`: the filters apply before the paging, so the page count
    and the total are those of the filtered list. Django's `get_page` convention for `page`: not
    a number → the first page, past the end → the last. Only the page's rows are read with their
    model's metrics, health and open alarms; the latest values are the asset row's own
    `last_values` (no telemetry is read). The tiles count every visible asset.

    The page's `object_list` is one `overview_row` dict per asset, every figure and date already
    written in the request's locale and zone: the template only puts them in place
    (docs/performance.md, S5: Django's per-variable look-ups and filters were most of the
    request).
    """
    visible = Asset.objects.visible_to(actor)
    # The tiles and the filtered list's length in one query (the paginator is told the latter).
    counted = visible.aggregate(
        shown=Count("id", filter=Q(pk__in=assets.order_by().values("pk"))),
        **{s.value: Count("id", filter=Q(status=s.value)) for s in AssetStatus},
    )
    # A subquery, not a Count over a join and a GROUP BY: one index probe per row shown.
    open_alarms = (
        Alarm.objects.filter(
            customer=OuterRef("customer_id"), asset=OuterRef("pk"), state__in=ACTIVE_ALARM_STATES
        )
        .order_by()
        .values("asset")
        .annotate(n=Count("pk"))
        .values("n")
    )
    # The page's ids first, ordered over the narrow rows (the asset and what it sorts by), then
    # only those rows with everything the table shows: the sort never carries 1,000 wide rows
    # joined to their site, model, customer and health, and a deep page costs its offset in ids.
    paginator = Paginator(assets.values_list("pk", flat=True), OVERVIEW_PAGE_SIZE)
    paginator.count = counted.pop("shown")  # a cached_property: no COUNT query of its own
    shown: Page[Any] = paginator.get_page(page)
    ids = list(shown.object_list)
    # The page's rows as plain values: no model instances, and none of the wide columns the
    # table does not show (the health's forecasts, the alarm rules' state); each with its
    # model's gauges, ordered by code (a subquery, not a query of their own).
    model_gauges = (
        MetricDefinition.objects.filter(asset_model=OuterRef("model_id"), kind=MetricKind.GAUGE)
        .order_by("code")
        .values(json=JSONObject(code="code", label="label", unit="unit"))
    )
    rows = {
        row["pk"]: row
        for row in assets.filter(pk__in=ids)
        .order_by()
        .annotate(open_alarms=Coalesce(Subquery(open_alarms), Value(0)), gauges=ArraySubquery(model_gauges))
        .values(*OVERVIEW_COLUMNS, "open_alarms", "gauges")
    }
    gauges: dict[Any, Gauges] = {}
    for row in rows.values():  # once a model: the same for its every row
        if row["model_id"] not in gauges:
            gauges[row["model_id"]] = Gauges.of(row["gauges"])
    now = timezone.now()
    places = [(pk, r["customer_id"], r["site_id"], r["customer__time_zone"]) for pk, r in rows.items()]
    spans = windows_for_places(places, now, now + TICK)
    detail_url = _asset_url()
    shown.object_list = [
        overview_row(rows[pk], gauges[rows[pk]["model_id"]], bool(spans[pk]), detail_url)
        for pk in ids
        if pk in rows
    ]  # one gone meanwhile is left out
    return {
        "tiles": [(s.value, s.label, counted[s.value]) for s in AssetStatus],
        "total": sum(counted.values()),
        "page": shown,
        "sites": Site.objects.visible_to(actor).select_related("customer").order_by("customer__name", "name"),
        # A semi-join on the visible assets' models, not a join of every asset and a DISTINCT.
        "models": AssetModel.objects.filter(pk__in=visible.values("model_id")).order_by("name"),
    }


OVERVIEW_COLUMNS = (
    "pk", "name", "serial_number", "status", "last_seen_at", "last_values", "model_id",
    "model__name", "site__name", "customer__name", "health__score", "health__risk",
    "customer_id", "site_id", "customer__time_zone",  # for the maintenance windows
)  # fmt: skip
_STATUS_LABELS = dict(AssetStatus.choices)
_RISK_LABELS = dict(RiskLevel.choices)
_ANY_UUID = uuid.UUID(int=0)


@dataclass(frozen=True)
class Gauges:
    """An asset model's gauges, ordered by code, as (code, label, unit), and the first
    OVERVIEW_GAUGES of them as the JSON the live updates read (`data-gauges`)."""

    metrics: list[tuple[str, str, str]]
    spec: str

    @classmethod
    def of(cls, gauges: list[dict[str, str]]) -> Gauges:
        """From the rows query's `gauges`: [{code, label, unit}, …]."""
        metrics = [(g["code"], g["label"], g["unit"]) for g in gauges]
        return cls(metrics, json.dumps([list(m) for m in metrics[:OVERVIEW_GAUGES]]))


def _asset_url() -> Callable[[Any], str]:
    """The asset page's address for an asset id: reversed once, not once a row."""
    pattern = reverse("asset_detail", args=[_ANY_UUID])
    return lambda pk: pattern.replace(str(_ANY_UUID), str(pk))


def overview_row(
    row: dict[str, Any], gauges: Gauges, in_maintenance: bool, url: Callable[[Any], str]
) -> dict[str, Any]:
    """One row of the overview as the template shows it (fleet/templates/fleet/overview.html),
    written once here: strings the template escapes, no look-up or filter of its own. The values
    as `|quantity`, the last heartbeat as `|date:'c'` and `|when_seconds` wrote them; the live
    updates (static/js/fleet-overview.js) write the same."""
    last_values = row["last_values"] or {}
    seen = row["last_seen_at"]
    if seen is not None:
        seen = timezone.localtime(seen)
    risk = row["health__risk"]
    return {
        "pk": str(row["pk"]),
        "url": url(row["pk"]),
        "status": row["status"],
        "status_badge": STATUS_BADGE.get(row["status"], "badge-muted"),
        "status_label": _STATUS_LABELS.get(row["status"], row["status"]),
        "gauges": gauges.spec,
        "name": row["name"],
        "in_maintenance": in_maintenance,
        "serial_number": row["serial_number"],
        "model": row["model__name"],
        "customer": row["customer__name"],
        "site": row["site__name"],
        "seen_iso": seen.isoformat() if seen is not None else "",
        "seen": formatting.when_seconds(seen) if seen is not None else "",
        # The first OVERVIEW_GAUGES gauges that have a value (which need not be the first gauges).
        "values": [
            {"code": code, "label": label, "text": formatting.quantity(last_values[code], unit)}
            for code, label, unit in gauges.metrics
            if code in last_values
        ][:OVERVIEW_GAUGES],
        "health": None
        if risk is None  # never evaluated: no AssetHealth row
        else {
            "risk": risk,
            "badge": RISK_BADGES.get(risk, "badge-muted"),
            "label": _RISK_LABELS.get(risk, risk),
            "score": row["health__score"],
        },
        "open_alarms": row["open_alarms"],
    }
