from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response

from fleet import alarms, credentials, export, selectors, services, telemetry
from fleet.api.serializers import (
    AlarmSerializer,
    AssetCreateSerializer,
    AssetModelCreateSerializer,
    AssetModelSerializer,
    AssetSerializer,
    AssetUpdateSerializer,
    DeviceCreateSerializer,
    DeviceSerializer,
    DeviceTokenSerializer,
    HeartbeatSerializer,
    RotateSerializer,
    SiteCreateSerializer,
    SiteSerializer,
    SiteUpdateSerializer,
    StatusChangeSerializer,
    TelemetryExportQuerySerializer,
    TelemetryQuerySerializer,
    TelemetrySeriesSerializer,
    UsageQuerySerializer,
    UsageSeriesSerializer,
    telemetry_series_data,
)
from fleet.models import (
    Alarm,
    Asset,
    AssetModel,
    AssetStatusChange,
    Device,
    Heartbeat,
    MetricDefinition,
    MetricKind,
    Site,
)
from portal import csvfile
from portal.api.base import TenantScopedViewSet
from portal.models import Customer
from portal.roles import Capability
from portal.tenancy import scoped_get

VIEW = (Capability.VIEW_FLEET,)
MANAGE = (Capability.MANAGE_FLEET,)


class SiteViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    model = Site
    serializer_class = SiteSerializer
    capabilities = {"*": VIEW, "create": MANAGE, "partial_update": MANAGE}

    @extend_schema(request=SiteUpdateSerializer, responses=SiteSerializer, summary="Change a site")
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        site = self.get_object()
        data = SiteUpdateSerializer(site, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        site = services.site_update(actor=self.actor, site=site, **data.validated_data)
        return Response(SiteSerializer(site).data)

    @extend_schema(request=SiteCreateSerializer, responses={201: SiteSerializer}, summary="Create a site")
    def create(self, request: Request) -> Response:
        data = SiteCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        customer = scoped_get(
            Customer.objects.visible_to(self.actor), values.pop("customer"), field="customer"
        )
        site = services.site_create(actor=self.actor, customer=customer, **values)
        return Response(SiteSerializer(site).data, status=status.HTTP_201_CREATED)


class AssetModelViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """The provider's catalogue of machine models and their metrics."""

    model = AssetModel
    serializer_class = AssetModelSerializer
    capabilities = {"*": (Capability.VIEW_FLEET, Capability.VIEW_USAGE), "create": MANAGE}

    def narrow(self, queryset: Any) -> Any:
        return selectors.asset_model_list(actor=self.actor)

    @extend_schema(
        request=AssetModelCreateSerializer, responses={201: AssetModelSerializer}, summary="Create a model"
    )
    def create(self, request: Request) -> Response:
        data = AssetModelCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        metrics = [dict(m) for m in values.pop("metrics")]
        rules = [dict(r) for r in values.pop("alarm_rules", [])]
        model = services.asset_model_create(actor=self.actor, metrics=metrics, alarm_rules=rules, **values)
        return Response(AssetModelSerializer(self.get_queryset().get(pk=model.pk)).data, status=201)


def _series_query(
    serializer_class: type[serializers.Serializer[Any]], request: Request, *, default_span: timedelta
) -> tuple[dict[str, Any], datetime, datetime]:
    """Validate ?metric=&from=&to=&resolution= and fill the range: `to` now, `from` a span before."""
    params = request.query_params
    query = serializer_class(
        data={k: params[k] for k in ("metric", "from", "to", "resolution") if params.get(k)}
    )
    query.is_valid(raise_exception=True)
    end = query.validated_data.get("to") or timezone.now()
    start = query.validated_data.get("from") or end - default_span
    if start >= end:
        raise serializers.ValidationError({"from": ["Must be before `to`."]})
    return query.validated_data, start, end


class HeartbeatPagination(CursorPagination):
    ordering = ("-ts", "-id")
    page_size = 100
    max_page_size = 1000
    page_size_query_param = "page_size"


class AssetViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    model = Asset
    serializer_class = AssetSerializer
    filterset_class = selectors.AssetFilter
    # Finance reads assets too: usage is per asset, and its ids come from here.
    capabilities = {
        "*": VIEW,
        "list": (Capability.VIEW_FLEET, Capability.VIEW_USAGE),
        "retrieve": (Capability.VIEW_FLEET, Capability.VIEW_USAGE),
        "create": MANAGE,
        "partial_update": MANAGE,
        "usage": (Capability.VIEW_FLEET, Capability.VIEW_USAGE),
    }

    @extend_schema(request=AssetUpdateSerializer, responses=AssetSerializer, summary="Change or decommission")
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        asset = self.get_object()
        data = AssetUpdateSerializer(asset, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        if "site" in changes:
            sites = Site.objects.visible_to(self.actor).for_customer(asset.customer_id)
            changes["site"] = scoped_get(sites, changes["site"], field="site")
        asset = services.asset_update(actor=self.actor, asset=asset, **changes)
        return Response(AssetSerializer(self.get_queryset().get(pk=asset.pk)).data)

    def narrow(self, queryset: Any) -> Any:
        return selectors.asset_list(actor=self.actor)

    @extend_schema(
        request=AssetCreateSerializer, responses={201: AssetSerializer}, summary="Onboard an asset"
    )
    def create(self, request: Request) -> Response:
        data = AssetCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        site = scoped_get(Site.objects.visible_to(self.actor), values.pop("site"), field="site")
        model = scoped_get(
            AssetModel.objects.visible_to(self.actor), values.pop("model"), field="model", what="asset model"
        )
        asset = services.asset_create(actor=self.actor, site=site, model=model, **values)
        return Response(AssetSerializer(asset).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=HeartbeatSerializer(many=True), summary="Raw heartbeats, newest first")
    @action(detail=True, methods=["get"], pagination_class=HeartbeatPagination)
    def heartbeats(self, request: Request, pk: str | None = None) -> Response:
        asset = self.get_object()
        rows = Heartbeat.objects.for_customer(asset.customer_id).filter(asset=asset)
        paginator = HeartbeatPagination()
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(HeartbeatSerializer(page, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("metric", OpenApiTypes.STR, required=True, description="A counter metric code"),
            OpenApiParameter("from", OpenApiTypes.DATETIME, description="Default: 7 days before `to`"),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="Default: now"),
            OpenApiParameter("resolution", OpenApiTypes.STR, enum=["hour", "day", "month"]),
        ],
        responses=UsageSeriesSerializer,
        summary="Counter usage over time (decimal strings)",
    )
    @action(detail=True, methods=["get"])
    def usage(self, request: Request, pk: str | None = None) -> Response:
        asset = self.get_object()
        query, start, end = _series_query(UsageQuerySerializer, request, default_span=timedelta(days=7))
        metric = query["metric"]
        if not MetricDefinition.objects.filter(
            asset_model=asset.model, code=metric, kind=MetricKind.COUNTER
        ).exists():
            raise serializers.ValidationError({"metric": ["Not a counter metric of this asset's model."]})
        if end - start > timedelta(days=3 * 366):
            raise serializers.ValidationError({"from": ["At most three years at a time."]})
        series = selectors.usage_series(
            asset=asset, metric=metric, start=start, end=end, resolution=query["resolution"]
        )
        return Response(UsageSeriesSerializer(series).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("metric", OpenApiTypes.STR, required=True, description="A metric code"),
            OpenApiParameter("from", OpenApiTypes.DATETIME, description="Default: 24 hours before `to`"),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="Default: now"),
            OpenApiParameter(
                "resolution", OpenApiTypes.STR, enum=["raw", "minute", "hour", "day"],
                description="Default: the finest that fits 2,000 points",
            ),
        ],
        responses=TelemetrySeriesSerializer,
        summary="A metric over time: raw readings or min/avg/max per bucket",
    )  # fmt: skip
    @action(detail=True, methods=["get"])
    def telemetry(self, request: Request, pk: str | None = None) -> Response:
        asset = self.get_object()
        query, start, end = _series_query(TelemetryQuerySerializer, request, default_span=timedelta(hours=24))
        metric = query["metric"]
        if not MetricDefinition.objects.filter(asset_model=asset.model, code=metric).exists():
            raise serializers.ValidationError({"metric": ["Not a metric of this asset's model."]})
        try:
            data = telemetry.series(
                asset=asset,
                metric=metric,
                start=start,
                end=end,
                resolution=query.get("resolution"),
            )
        except telemetry.RangeTooLargeError as exc:
            raise serializers.ValidationError({"resolution": [str(exc)]}) from exc
        return Response(telemetry_series_data(data))

    @extend_schema(
        parameters=[
            OpenApiParameter("metric", OpenApiTypes.STR, description="One metric code; default: all"),
            OpenApiParameter("from", OpenApiTypes.DATETIME, description="Default: 24 hours before `to`"),
            OpenApiParameter("to", OpenApiTypes.DATETIME, description="Default: now"),
            OpenApiParameter(
                "resolution", OpenApiTypes.STR, enum=["raw", "minute", "hour", "day"],
                description="Default: raw up to 8 days, minute up to 31 days, hour up to 3 years, else day",
            ),
        ],
        responses=csvfile.SCHEMA,
        summary="Raw heartbeats or rollups over a range, as CSV",
    )  # fmt: skip
    def telemetry_csv(self, request: Request, pk: str | None = None) -> StreamingHttpResponse:
        asset = self.get_object()
        day = timedelta(hours=24)
        query, start, end = _series_query(TelemetryExportQuerySerializer, request, default_span=day)
        metric = query.get("metric")
        if metric and not MetricDefinition.objects.filter(asset_model=asset.model, code=metric).exists():
            raise serializers.ValidationError({"metric": ["Not a metric of this asset's model."]})
        resolution = query.get("resolution") or export.default_resolution(start, end)
        try:
            export.check_span(start, end, resolution)
        except export.RangeTooLongError as exc:
            raise serializers.ValidationError({"from": [str(exc)]}) from exc
        rows = export.rows(asset, start=start, end=end, resolution=resolution, metric=metric)
        response = StreamingHttpResponse(csvfile.csv_rows(next(rows), rows), content_type="text/csv")
        name = export.filename(asset, start, end, resolution)
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    @extend_schema(responses=StatusChangeSerializer(many=True), summary="Status history, newest first")
    @action(detail=True, methods=["get"], url_path="status-history")
    def status_history(self, request: Request, pk: str | None = None) -> Response:
        asset = self.get_object()
        rows = AssetStatusChange.objects.for_customer(asset.customer_id).filter(asset=asset).order_by("-at")
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(StatusChangeSerializer(page, many=True).data)


class AlarmViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Alarms of the assets you may see; support and operators acknowledge and clear."""

    model = Alarm
    serializer_class = AlarmSerializer
    filterset_class = selectors.AlarmFilter
    capabilities = {
        "*": VIEW,
        "acknowledge": (Capability.ACKNOWLEDGE_ALARMS,),
        "clear": (Capability.ACKNOWLEDGE_ALARMS,),
    }

    def narrow(self, queryset: Any) -> Any:
        return selectors.alarm_list(actor=self.actor)

    @extend_schema(request=None, responses=AlarmSerializer, summary="Acknowledge an alarm")
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str | None = None) -> Response:
        try:
            alarm = alarms.alarm_acknowledge(alarm=self.get_object(), actor=self.actor)
        except alarms.AlarmStateError as exc:
            raise serializers.ValidationError({"state": [str(exc)]}) from exc
        return Response(AlarmSerializer(alarm).data)

    @extend_schema(request=None, responses=AlarmSerializer, summary="Clear an alarm by hand")
    @action(detail=True, methods=["post"])
    def clear(self, request: Request, pk: str | None = None) -> Response:
        alarm = alarms.alarm_clear(alarm=self.get_object(), actor=self.actor)
        return Response(AlarmSerializer(alarm).data)


class DeviceViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Connectivity modules. Tokens are shown once, on creation and rotation."""

    model = Device
    serializer_class = DeviceSerializer
    capabilities = {"*": VIEW, "create": MANAGE, "rotate_token": MANAGE, "revoke": MANAGE}

    def narrow(self, queryset: Any) -> Any:
        return selectors.device_list(actor=self.actor)

    @extend_schema(
        request=DeviceCreateSerializer, responses={201: DeviceTokenSerializer}, summary="Install a device"
    )
    def create(self, request: Request) -> Response:
        data = DeviceCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        asset = scoped_get(Asset.objects.visible_to(self.actor), values.pop("asset"), field="asset")
        device, token = services.device_install(actor=self.actor, asset=asset, **values)
        device = self.get_queryset().get(pk=device.pk)
        return Response(
            {"device": DeviceSerializer(device).data, "token": token}, status=status.HTTP_201_CREATED
        )

    @extend_schema(request=RotateSerializer, responses=DeviceTokenSerializer, summary="Issue a new token")
    @action(detail=True, methods=["post"], url_path="rotate-token")
    def rotate_token(self, request: Request, pk: str | None = None) -> Response:
        device = self.get_object()
        data = RotateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        seconds = data.validated_data.get("overlap_seconds")
        with transaction.atomic():
            token = credentials.device_token_issue(
                device=device,
                actor=self.actor,
                overlap=timedelta(seconds=seconds) if seconds is not None else None,
            )
        device = self.get_queryset().get(pk=device.pk)
        return Response({"device": DeviceSerializer(device).data, "token": token})

    @extend_schema(request=None, responses=DeviceSerializer, summary="Revoke every token of the device")
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        device = self.get_object()
        credentials.device_revoke(device=device, actor=self.actor)
        return Response(DeviceSerializer(self.get_queryset().get(pk=device.pk)).data)
