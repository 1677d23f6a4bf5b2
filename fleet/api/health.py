"""An asset's health (docs/health.md): its score, risk level, active predictions and the last
evaluation of each health rule.

    GET /api/v1/assets/{id}/health/

The asset comes through the base class's scope: another customer's id is a 404 like a missing
one. An asset never evaluated answers score 100, risk ok, evaluated_at null.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from fleet.health.selectors import HealthView, asset_health
from fleet.models import Alarm, AlarmKind, AlarmState, Asset, HealthRuleKind, RiskLevel, Severity
from portal.api.base import TenantScopedViewSet
from portal.roles import Capability


class PredictionSerializer(serializers.ModelSerializer[Alarm]):
    kind = serializers.ChoiceField(choices=[AlarmKind.PREDICTION, AlarmKind.ANOMALY], read_only=True)
    health_rule = serializers.UUIDField(source="health_rule_id", read_only=True, allow_null=True)
    expected_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="Prediction: when the limit is expected to be crossed."
    )

    class Meta:
        model = Alarm
        fields = ["id", "kind", "severity", "state", "message", "health_rule", "expected_at", "raised_at"]
        read_only_fields = fields
        extra_kwargs = {"state": {"choices": [AlarmState.RAISED, AlarmState.ACKNOWLEDGED]}}


class RuleEvaluationSerializer(serializers.Serializer[dict[str, object]]):
    rule = serializers.UUIDField(read_only=True)
    name = serializers.CharField(read_only=True)
    metric = serializers.CharField(read_only=True)
    kind = serializers.ChoiceField(choices=HealthRuleKind.choices, read_only=True)
    severity = serializers.ChoiceField(choices=Severity.choices, read_only=True)
    active = serializers.BooleanField(read_only=True, default=False)
    limit = serializers.FloatField(read_only=True, allow_null=True, required=False)
    level = serializers.FloatField(read_only=True, required=False, help_text="Trend: the fitted value now.")
    slope_per_hour = serializers.FloatField(read_only=True, required=False)
    expected_at = serializers.DateTimeField(read_only=True, allow_null=True, required=False)
    forecast = serializers.ListField(
        child=serializers.ListField(child=serializers.JSONField(), min_length=2, max_length=2),
        read_only=True, required=False,
        help_text="Trend: [[time, value], [time, value]] from the fitted value now to the limit.",
    )  # fmt: skip
    z = serializers.FloatField(read_only=True, required=False, help_text="Anomaly: the robust z-score.")


class AssetHealthSerializer(serializers.Serializer[HealthView]):
    asset = serializers.UUIDField(source="asset_id", read_only=True)
    score = serializers.IntegerField(read_only=True, min_value=0, max_value=100)
    risk = serializers.ChoiceField(choices=RiskLevel.choices, read_only=True)
    evaluated_at = serializers.DateTimeField(read_only=True, allow_null=True)
    predictions = PredictionSerializer(many=True, read_only=True)
    rules = RuleEvaluationSerializer(many=True, read_only=True)


class AssetHealthViewSet(TenantScopedViewSet):
    """One asset's health."""

    model = Asset
    capabilities = {"*": (Capability.VIEW_FLEET,)}
    serializer_class = AssetHealthSerializer
    pagination_class = None

    @extend_schema(responses=AssetHealthSerializer, summary="An asset's health score and predictions")
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        asset = self.get_object()
        return Response(AssetHealthSerializer(asset_health(asset=asset)).data)
