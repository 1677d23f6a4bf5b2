"""Flagged counter readings (docs/billing.md, "Implausible counter readings"): everyone who
sees the asset sees the flag; support and operators accept or reject it."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from fleet import selectors, services
from fleet.models import ImplausibleReading
from portal.api.base import TenantScopedViewSet
from portal.roles import Capability


class ImplausibleReadingSerializer(serializers.ModelSerializer[ImplausibleReading]):
    asset_name = serializers.CharField(source="asset.name", read_only=True)
    decided_by = serializers.EmailField(
        source="decided_by.email", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = ImplausibleReading
        fields = [
            "id", "asset", "asset_name", "device", "seq", "metric", "ts", "value", "baseline_value",
            "baseline_ts", "increment", "allowed", "status", "created_at", "decided_at", "decided_by",
        ]  # fmt: skip
        read_only_fields = fields


class ImplausibleReadingViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Counter readings beyond their metric's bound: billed only once accepted."""

    model = ImplausibleReading
    serializer_class = ImplausibleReadingSerializer
    filterset_class = selectors.ImplausibleReadingFilter
    capabilities = {
        "*": (Capability.VIEW_FLEET, Capability.VIEW_USAGE),
        "accept": (Capability.WORK_TICKETS,),
        "reject": (Capability.WORK_TICKETS,),
    }

    def narrow(self, queryset: Any) -> Any:
        return selectors.implausible_reading_list(actor=self.actor)

    def _decide(self, *, accept: bool) -> Response:
        try:
            reading = services.implausible_reading_decide(
                reading=self.get_object(), accept=accept, actor=self.actor
            )
        except services.ReadingDecisionError as exc:
            raise serializers.ValidationError({"status": [str(exc)]}) from exc
        return Response(ImplausibleReadingSerializer(self.get_queryset().get(pk=reading.pk)).data)

    @extend_schema(request=None, responses=ImplausibleReadingSerializer, summary="Accept: bill its increment")
    @action(detail=True, methods=["post"])
    def accept(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(accept=True)

    @extend_schema(request=None, responses=ImplausibleReadingSerializer, summary="Reject: never bill it")
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str | None = None) -> Response:
        return self._decide(accept=False)
