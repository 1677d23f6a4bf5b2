"""Stops the customer caused, on assets' status history (fleet/exclusions.py;
docs/api.md, "Customer-caused stops").

    GET    /api/v1/status-exclusions/?asset={id}   the marks the user may see
    POST   /api/v1/status-exclusions/              {"asset", "starts_at", "ends_at", "reason"}
    GET    /api/v1/status-exclusions/{id}/
    DELETE /api/v1/status-exclusions/{id}/

Everyone who sees the asset reads its marks (with the reason); support and operators
(WORK_TICKETS or MANAGE_FLEET) mark and remove them. Rows and the asset in the body come
through the user's scope: another customer's id is a 404 in the path, "Unknown asset." in the body.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from fleet import exclusions
from fleet.models import Asset, StatusExclusion
from portal.api.base import TenantScopedViewSet
from portal.roles import Capability
from portal.tenancy import scoped_get, scoped_get_or_none


class StatusExclusionSerializer(serializers.ModelSerializer[StatusExclusion]):
    asset = serializers.UUIDField(source="asset_id")
    created_by = serializers.EmailField(source="created_by.email", read_only=True, allow_null=True)

    class Meta:
        model = StatusExclusion
        fields = ["id", "asset", "starts_at", "ends_at", "cause", "reason", "created_by", "created_at"]
        read_only_fields = ["id", "cause", "created_by", "created_at"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["ends_at"] <= attrs["starts_at"]:
            raise serializers.ValidationError({"ends_at": "The end must be after the start."})
        if not attrs["reason"].strip():
            raise serializers.ValidationError({"reason": "Say why the stop was the customer's doing."})
        return attrs


class StatusExclusionViewSet(
    TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin
):
    model = StatusExclusion
    serializer_class = StatusExclusionSerializer
    capabilities = {
        "*": (Capability.VIEW_FLEET,),
        "create": exclusions.MARKERS,
        "destroy": exclusions.MARKERS,
    }

    def narrow(self, queryset: Any) -> Any:
        queryset = queryset.select_related("created_by").order_by("-starts_at", "id")
        asset = self.request.query_params.get("asset") if self.action == "list" else None
        if asset:
            found = scoped_get_or_none(Asset.objects.visible_to(self.actor), asset)
            queryset = queryset.filter(asset=found) if found else queryset.none()
        return queryset

    @extend_schema(
        parameters=[OpenApiParameter("asset", OpenApiTypes.UUID, description="Only this asset's marks.")],
        summary="Customer-caused stops",
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(summary="Mark a stop as caused by the customer")
    def create(self, request: Request) -> Response:
        data = StatusExclusionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        asset = scoped_get(Asset.objects.visible_to(self.actor), values["asset_id"], field="asset")
        exclusion = exclusions.exclusion_mark(
            actor=self.actor, asset=asset, starts_at=values["starts_at"], ends_at=values["ends_at"],
            reason=values["reason"],
        )  # fmt: skip
        return Response(StatusExclusionSerializer(exclusion).data, status=status.HTTP_201_CREATED)

    @extend_schema(summary="Remove a customer-caused stop mark")
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        exclusions.exclusion_remove(actor=self.actor, exclusion=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
