"""An asset's alarm thresholds: the model's rule and the customer's own, tighter value
(fleet/thresholds.py). Everyone who sees the asset reads them; customer admins (and operators)
set and clear them.

    GET    /api/v1/assets/{id}/thresholds/            every active rule of the asset's model
    GET    /api/v1/assets/{id}/thresholds/{rule_id}/  one
    PUT    /api/v1/assets/{id}/thresholds/{rule_id}/  {"threshold": "85"}: set the asset's own
    DELETE /api/v1/assets/{id}/thresholds/{rule_id}/  back to the model's

The asset comes through the base class's scope (another customer's id: 404); the rule through
the asset's model (a rule of another model, or inactive: 404).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from fleet import thresholds
from fleet.models import AlarmRule, Asset, Comparison, Severity
from portal.api.base import TenantScopedViewSet
from portal.roles import Capability


class ThresholdSerializer(serializers.Serializer[thresholds.ThresholdRow]):
    rule = serializers.UUIDField(source="rule_id", read_only=True)
    name = serializers.CharField(source="rule.name", read_only=True)
    metric = serializers.CharField(source="rule.metric", read_only=True)
    unit = serializers.CharField(read_only=True)
    comparison = serializers.ChoiceField(source="rule.comparison", choices=Comparison.choices, read_only=True)
    severity = serializers.ChoiceField(source="rule.severity", choices=Severity.choices, read_only=True)
    for_seconds = serializers.IntegerField(source="rule.for_seconds", read_only=True)
    model_threshold = serializers.DecimalField(max_digits=20, decimal_places=6, read_only=True)
    customer_threshold = serializers.DecimalField(
        max_digits=20, decimal_places=6, read_only=True, allow_null=True,
        help_text="The asset's own threshold; null: the model's applies.",
    )  # fmt: skip
    effective_threshold = serializers.DecimalField(
        max_digits=20, decimal_places=6, read_only=True,
        help_text="What alarm evaluation uses: the tighter of the two.",
    )  # fmt: skip
    set_by = serializers.EmailField(read_only=True, allow_null=True)
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)


class ThresholdInputSerializer(serializers.Serializer[Any]):
    threshold = serializers.DecimalField(
        max_digits=20, decimal_places=6,
        help_text="At or inside the model's limit: ≤ it for a rule that alarms above, ≥ for one below.",
    )  # fmt: skip


class AssetThresholdViewSet(TenantScopedViewSet):
    """Alarm thresholds of one asset: the model's and the asset's own."""

    model = Asset
    capabilities = {
        "*": (Capability.VIEW_FLEET,),
        "update": (Capability.TUNE_THRESHOLDS,),
        "destroy": (Capability.TUNE_THRESHOLDS,),
    }
    serializer_class = ThresholdSerializer
    pagination_class = None

    def _rule(self, asset: Asset) -> AlarmRule:
        try:
            return thresholds.threshold_rule_get(asset=asset, rule_id=self.kwargs["rule"])
        except AlarmRule.DoesNotExist as exc:
            raise NotFound() from exc

    def _row(self, asset: Asset, rule: AlarmRule) -> dict[str, Any]:
        (row,) = thresholds.threshold_rows(asset=asset, rule_id=rule.pk)
        return dict(ThresholdSerializer(row).data)

    @extend_schema(responses=ThresholdSerializer(many=True), summary="An asset's alarm thresholds")
    def list(self, request: Request, pk: str | None = None) -> Response:
        asset = self.get_object()
        rows: Any = thresholds.threshold_rows(asset=asset)
        return Response(ThresholdSerializer(rows, many=True).data)

    @extend_schema(responses=ThresholdSerializer, summary="One alarm threshold of an asset")
    def retrieve(self, request: Request, pk: str | None = None, rule: str | None = None) -> Response:
        asset = self.get_object()
        return Response(self._row(asset, self._rule(asset)))

    @extend_schema(
        request=ThresholdInputSerializer,
        responses=ThresholdSerializer,
        summary="Set the asset's own threshold",
    )
    def update(self, request: Request, pk: str | None = None, rule: str | None = None) -> Response:
        asset = self.get_object()
        alarm_rule = self._rule(asset)
        data = ThresholdInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            thresholds.threshold_set(
                asset=asset, rule=alarm_rule, threshold=data.validated_data["threshold"], actor=self.actor
            )
        except thresholds.ThresholdError as exc:
            raise serializers.ValidationError({"threshold": [str(exc)]}) from exc
        return Response(self._row(asset, alarm_rule))

    @extend_schema(request=None, responses={204: None}, summary="Back to the model's threshold")
    def destroy(self, request: Request, pk: str | None = None, rule: str | None = None) -> Response:
        asset = self.get_object()
        thresholds.threshold_clear(asset=asset, rule=self._rule(asset), actor=self.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)
