"""Reads of the fleet, scoped by the acting user."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Prefetch, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncMonth
from django.utils import timezone

from fleet.models import Asset, AssetModel, Device, DeviceCredential, HourlyUsage, MetricDefinition, Site
from portal.models import User
from portal.validation import is_uuid


def site_list(*, actor: User, search: str = "") -> QuerySet[Site]:
    sites = Site.objects.visible_to(actor).select_related("customer")
    if search:
        sites = sites.filter(name__icontains=search)
    return sites.order_by("customer__name", "name")


def asset_model_list() -> QuerySet[AssetModel]:
    """The provider's catalogue (not tenant data): every fleet-viewing role may read it."""
    return AssetModel.objects.prefetch_related(
        Prefetch("metrics", MetricDefinition.objects.order_by("code")), "alarm_rules"
    )


def asset_list(
    *,
    actor: User,
    site: str | None = None,
    status: str | None = None,
    model: str | None = None,
    search: str = "",
) -> QuerySet[Asset]:
    assets = Asset.objects.visible_to(actor).select_related("site", "model", "customer")
    if site:
        assets = assets.filter(site_id=site)
    if status:
        assets = assets.filter(status=status)
    if model:
        assets = assets.filter(
            Q(model__code=model) | Q(model_id=model) if is_uuid(model) else Q(model__code=model)
        )
    if search:
        assets = assets.filter(Q(name__icontains=search) | Q(serial_number__icontains=search))
    return assets.order_by("customer__name", "name")


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


def fleet_overview(
    *, actor: User, site: str | None, status: str | None, model: str | None, search: str
) -> dict[str, Any]:
    """The overview page's data in a constant number of queries."""
    from django.db.models import Count

    from fleet.models import ACTIVE_ALARM_STATES, AssetStatus

    visible = Asset.objects.visible_to(actor)
    counts = dict(visible.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    assets = (
        asset_list(actor=actor, site=site, status=status, model=model, search=search)
        .prefetch_related(Prefetch("model__metrics", MetricDefinition.objects.order_by("code")))
        .annotate(open_alarms=Count("alarms", filter=Q(alarms__state__in=ACTIVE_ALARM_STATES)))
    )
    return {
        "tiles": [(s.value, s.label, counts.get(s.value, 0)) for s in AssetStatus],
        "total": sum(counts.values()),
        "assets": assets,
        "sites": Site.objects.visible_to(actor).select_related("customer").order_by("customer__name", "name"),
        "models": AssetModel.objects.filter(assets__in=visible).distinct().order_by("name"),
    }
