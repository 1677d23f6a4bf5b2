"""Reads of the fleet, scoped by the acting user, and the filters of its lists.

The FilterSets here are the one definition of a list's ?filters: the API list (through
`portal.api.base.ListFilterBackend`, which answers bad input 400) and the page (through
`portal.filters.page_filters`, which shows the error) both use them.
"""

from __future__ import annotations

import json
import uuid
import zoneinfo
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import django_filters
from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import Count, F, Prefetch, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, TruncDay, TruncMonth
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
    request). Four queries: the counts with the model list, the page's rows, the maintenance
    windows that may be in effect, the sites.
    """
    visible = Asset.objects.visible_to(actor)
    # The tiles, the filtered list's length (the paginator is told it) and the model filter's
    # choices in one pass over the visible assets, grouped by model and status: a few rows.
    groups = list(
        visible.order_by("model__name", "model__code")
        .values("model__name", "model__code", "status")
        .annotate(n=Count("id"), shown=Count("id", filter=Q(pk__in=assets.order_by().values("pk"))))
    )
    counted: dict[str, int] = defaultdict(int)
    models: dict[str, str] = {}  # code → name, by name
    for group in groups:
        counted[group["status"]] += group["n"]
        models[group["model__code"]] = group["model__name"]
    ids = assets.values_list("pk", flat=True)
    paginator = Paginator(ids, OVERVIEW_PAGE_SIZE)
    paginator.count = sum(group["shown"] for group in groups)  # a cached_property: no COUNT
    shown: Page[Any] = paginator.get_page(page)
    offset = (shown.number - 1) * OVERVIEW_PAGE_SIZE
    rows = _overview_rows(ids[offset : offset + OVERVIEW_PAGE_SIZE]) if paginator.count else []
    gauges: dict[Any, Gauges] = {}
    for row in rows:  # once a model: the same for its every row
        if row["model_id"] not in gauges:
            gauges[row["model_id"]] = Gauges.of(row["gauges"])
    now = timezone.now()
    places = [(r["pk"], r["customer_id"], r["site_id"], r["customer__time_zone"]) for r in rows]
    spans = windows_for_places(places, now, now + TICK)
    detail_url = _asset_url()
    shown.object_list = [
        overview_row(row, gauges[row["model_id"]], bool(spans[row["pk"]]), detail_url) for row in rows
    ]
    tiles = [(s.value, s.label, counted[s.value]) for s in AssetStatus]
    return {
        "tiles": tiles,
        "total": sum(count for _, _, count in tiles),
        "page": shown,
        "sites": Site.objects.visible_to(actor)
        .order_by("customer__name", "name")
        .values("pk", "name", customer_name=F("customer__name")),
        "models": [{"code": code, "name": name} for code, name in models.items()],
    }


# The page's rows, in the order of the page's ids: `ids` is the filtered list's slice, compiled
# by the ORM (scoped, filtered, ordered, LIMIT/OFFSET), and the rest is only joins by those ids.
# Written as SQL because building and compiling this query through the ORM (two correlated
# subqueries over the filters' queryset) cost more CPU than the rest of the selector
# (docs/performance.md, S5). Each row's open alarms, and its model's gauges by code as JSON.
_OVERVIEW_ROWS_SQL = """
SELECT a.id, a.name, a.serial_number, a.status, a.last_seen_at, a.last_values::text, a.model_id,
       m.name, s.name, c.name, h.score, h.risk, a.customer_id, a.site_id, c.time_zone,
       (SELECT count(*) FROM fleet_alarm al
         WHERE al.customer_id = a.customer_id AND al.asset_id = a.id AND al.state = ANY(%s)),
       (SELECT json_agg(json_build_array(g.code, g.label, g.unit) ORDER BY g.code)::text
          FROM fleet_metricdefinition g WHERE g.asset_model_id = a.model_id AND g.kind = %s)
  FROM unnest(ARRAY({ids})) WITH ORDINALITY AS page (id, n)
  JOIN fleet_asset a ON a.id = page.id
  JOIN portal_customer c ON c.id = a.customer_id
  JOIN fleet_assetmodel m ON m.id = a.model_id
  JOIN fleet_site s ON s.id = a.site_id
  LEFT JOIN fleet_assethealth h ON h.asset_id = a.id
 ORDER BY page.n
"""
OVERVIEW_COLUMNS = (
    "pk", "name", "serial_number", "status", "last_seen_at", "last_values", "model_id",
    "model__name", "site__name", "customer__name", "health__score", "health__risk",
    "customer_id", "site_id", "customer__time_zone",  # for the maintenance windows
    "open_alarms", "gauges",
)  # fmt: skip


def _overview_rows(ids: QuerySet[Any]) -> list[dict[str, Any]]:
    """The rows of the page whose ids `ids` (a sliced `values_list("pk")`) selects, in its order,
    as dicts keyed by OVERVIEW_COLUMNS: `last_values` decoded, `gauges` the JSON `Gauges.of` reads."""
    # The ORM's SQL with its parameters apart: nothing of the request is written into the text.
    ids_sql, ids_params = ids.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(
            _OVERVIEW_ROWS_SQL.format(ids=ids_sql),
            [list(ACTIVE_ALARM_STATES), MetricKind.GAUGE.value, *ids_params],
        )
        rows = [dict(zip(OVERVIEW_COLUMNS, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        row["last_values"] = json.loads(row["last_values"])
    return rows


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
    def of(cls, gauges: str | None) -> Gauges:
        """From the rows query's `gauges`: a JSON array of [code, label, unit], or NULL for none."""
        metrics = [(code, label, unit) for code, label, unit in json.loads(gauges or "[]")]
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
