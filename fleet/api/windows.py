"""/api/v1/maintenance-windows/: everyone who sees the fleet reads their customer's windows;
support plans, moves, cancels, confirms and closes them (fleet.windows)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from fleet import windows
from fleet.models import Asset, MaintenanceWindow, Recurrence, Site, WindowStatus
from portal.api.base import TenantScopedViewSet
from portal.models import Customer
from portal.roles import Capability
from portal.tenancy import scoped_get

VIEW = (Capability.VIEW_FLEET,)
PLAN = (Capability.WORK_TICKETS,)


class WindowSerializer(serializers.ModelSerializer[MaintenanceWindow]):
    assets: serializers.PrimaryKeyRelatedField[Asset] = serializers.PrimaryKeyRelatedField(
        many=True, read_only=True
    )

    class Meta:
        model = MaintenanceWindow
        fields = [
            "id", "customer", "title", "reason", "starts_at", "ends_at", "site", "assets", "recurrence",
            "recurs_until", "is_emergency", "status", "closed_early_at", "cancelled_at", "created_at",
            "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class WindowCreateSerializer(serializers.Serializer[MaintenanceWindow]):
    customer = serializers.UUIDField()
    title = serializers.CharField(max_length=120)
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    starts_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Ignored for an emergency window (it starts now).",
    )
    ends_at = serializers.DateTimeField()
    site = serializers.UUIDField(required=False, allow_null=True, default=None)
    assets = serializers.ListField(
        child=serializers.UUIDField(), required=False, default=list, max_length=1000
    )
    recurrence = serializers.ChoiceField(choices=Recurrence.choices, required=False, default="")
    recurs_until = serializers.DateField(required=False, allow_null=True, default=None)
    is_emergency = serializers.BooleanField(required=False, default=False)
    status = serializers.ChoiceField(
        choices=[WindowStatus.PLANNED, WindowStatus.PROPOSED], required=False, default=WindowStatus.PLANNED
    )


class WindowMoveSerializer(serializers.Serializer[MaintenanceWindow]):
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    title = serializers.CharField(max_length=120, required=False)
    reason = serializers.CharField(required=False, allow_blank=True)


class CloseEarlySerializer(serializers.Serializer[MaintenanceWindow]):
    at = serializers.DateTimeField(required=False, allow_null=True, default=None, help_text="Default: now.")


class MaintenanceWindowViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    model = MaintenanceWindow
    serializer_class = WindowSerializer
    capabilities = {"*": VIEW, "create": PLAN, "partial_update": PLAN, "cancel": PLAN, "close_early": PLAN,
                    "confirm": PLAN}  # fmt: skip

    def narrow(self, queryset: Any) -> Any:
        return windows.window_list(actor=self.actor)

    @extend_schema(request=WindowCreateSerializer, responses={201: WindowSerializer}, summary="Plan a window")
    def create(self, request: Request) -> Response:
        data = WindowCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        customer = scoped_get(Customer.objects.visible_to(self.actor), values["customer"], field="customer")
        site = None
        if values["site"] is not None:
            site = scoped_get(Site.objects.for_customer(customer), values["site"], field="site")
        assets = [
            scoped_get(Asset.objects.for_customer(customer), pk, field="assets", what="asset")
            for pk in dict.fromkeys(values["assets"])
        ]
        common: dict[str, Any] = {
            "actor": self.actor, "customer": customer, "title": values["title"], "reason": values["reason"],
            "ends_at": values["ends_at"], "site": site, "assets": assets,
        }  # fmt: skip
        if values["is_emergency"]:
            window = windows.window_open_emergency(**common)
        else:
            window = windows.window_plan(
                **common, starts_at=values["starts_at"], recurrence=values["recurrence"],
                recurs_until=values["recurs_until"], status=values["status"],
            )  # fmt: skip
        return Response(self._out(window), status=status.HTTP_201_CREATED)

    def _out(self, window: MaintenanceWindow) -> Any:
        return WindowSerializer(self.get_queryset().get(pk=window.pk)).data

    @extend_schema(request=WindowMoveSerializer, responses=WindowSerializer, summary="Move a window")
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        window = self.get_object()
        data = WindowMoveSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        window = windows.window_move(
            actor=self.actor, window=window, starts_at=values["starts_at"], ends_at=values["ends_at"],
            title=values.get("title"), reason=values.get("reason"),
        )  # fmt: skip
        return Response(self._out(window))

    @extend_schema(request=None, responses=WindowSerializer, summary="Cancel a window")
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        window = windows.window_cancel(actor=self.actor, window=self.get_object())
        return Response(self._out(window))

    @extend_schema(request=None, responses=WindowSerializer, summary="Plan a proposed window")
    @action(detail=True, methods=["post"])
    def confirm(self, request: Request, pk: str | None = None) -> Response:
        window = windows.window_confirm(actor=self.actor, window=self.get_object())
        return Response(self._out(window))

    @extend_schema(request=CloseEarlySerializer, responses=WindowSerializer, summary="End a running window")
    @action(detail=True, methods=["post"], url_path="close-early")
    def close_early(self, request: Request, pk: str | None = None) -> Response:
        window = self.get_object()
        data = CloseEarlySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        window = windows.window_close_early(actor=self.actor, window=window, at=data.validated_data["at"])
        return Response(self._out(window))
