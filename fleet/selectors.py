"""Reads of the fleet, scoped by the acting user, and the filters of its lists.

The FilterSets here are the one definition of a list's ?filters: the API list (through
`portal.api.base.ListFilterBackend`, which answers bad input 400) and the page (through
`portal.filters.page_filters`, which shows the error) both use them.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import django_filters
from django.core.paginator import Page, Paginator
from django.db.models import Count, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDay, TruncMonth
from django.utils import timezone

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
    Severity,
    Site,
)
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


def fleet_overview(*, actor: User, assets: QuerySet[Asset], page: str | None = None) -> dict[str, Any]:
    """The overview page's data in a constant number of queries, whatever the fleet's size.

    `assets` is a filtered `asset_list`: the filters apply before the paging, so the page count
    and the total are those of the filtered list. Django's `get_page` convention for `page`: not
    a number → the first page, past the end → the last. Only the page's rows are read with their
    model's metrics, health and open alarms; the latest values are the asset row's own
    `last_values` (no telemetry is read). The tiles count every visible asset.
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
    rows = {
        asset.pk: asset
        for asset in assets.filter(pk__in=ids)
        .order_by()
        .select_related("health")
        .prefetch_related(Prefetch("model__metrics", MetricDefinition.objects.order_by("code")))
        .annotate(open_alarms=Coalesce(Subquery(open_alarms), Value(0)))
    }
    shown.object_list = [rows[pk] for pk in ids if pk in rows]  # one gone meanwhile is left out
    return {
        "tiles": [(s.value, s.label, counted[s.value]) for s in AssetStatus],
        "total": sum(counted.values()),
        "page": shown,
        "sites": Site.objects.visible_to(actor).select_related("customer").order_by("customer__name", "name"),
        "models": AssetModel.objects.filter(assets__in=visible).distinct().order_by("name"),
    }
