"""A contract's availability statement: `GET /api/v1/contracts/{id}/availability/?period=YYYY-MM`
(docs/api.md, "Availability"; the rules in docs/availability.md).

The same figures as the statement page and PDF. The contract comes through the user's scoped
contracts: another customer's contract answers 404, like a missing one.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing import selectors
from billing.api.serializers import PeriodQuerySerializer
from billing.availability import DownInterval, Exclusion, Statement
from billing.models import Contract
from billing.views.availability import statement_for
from portal.api.base import TenantScopedViewSet
from portal.roles import Capability

PERIOD = OpenApiParameter(
    "period", OpenApiTypes.STR, description="A month as YYYY-MM (default: the last complete month)."
)


def _seconds(value: Any) -> int:
    return int(value.total_seconds())


class DownIntervalSerializer(serializers.Serializer[DownInterval]):
    asset = serializers.UUIDField(source="asset_id")
    serial_number = serializers.CharField()
    status = serializers.CharField(help_text="The status that counted as down (its cause).")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    duration_seconds = serializers.SerializerMethodField()
    excluded_seconds = serializers.SerializerMethodField()
    excluded_because = serializers.ListField(child=serializers.CharField(), source="reasons")

    def get_duration_seconds(self, interval: DownInterval) -> int:
        return _seconds(interval.duration)

    def get_excluded_seconds(self, interval: DownInterval) -> int:
        return _seconds(interval.excluded)


class ExclusionSerializer(serializers.Serializer[Exclusion]):
    asset = serializers.UUIDField(source="asset_id")
    serial_number = serializers.CharField()
    kind = serializers.ChoiceField(choices=["maintenance", "customer"])
    reason = serializers.CharField(source="title", help_text="The window's title or the stop's reason.")
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    applies = serializers.BooleanField(help_text="False when the contract's terms count this time.")


class AvailabilitySerializer(serializers.Serializer[Statement]):
    contract = serializers.UUIDField(source="contract.pk")
    period = serializers.CharField(source="period.label")
    time_zone = serializers.CharField(source="period.time_zone")
    period_start = serializers.DateTimeField(source="period.start")
    period_end = serializers.DateTimeField(source="period.end")
    measured_until = serializers.DateTimeField(source="until")
    down_states = serializers.ListField(child=serializers.CharField())
    exclude_maintenance = serializers.BooleanField(source="contract.exclude_maintenance")
    exclude_customer_stops = serializers.BooleanField(source="contract.exclude_customer_stops")
    covered_seconds = serializers.SerializerMethodField()
    excluded_seconds = serializers.SerializerMethodField()
    down_seconds = serializers.SerializerMethodField()
    down_excluded_seconds = serializers.SerializerMethodField()
    availability = serializers.DecimalField(
        max_digits=7,
        decimal_places=4,
        allow_null=True,
        help_text="Percent, truncated; null: nothing measured.",
    )
    target = serializers.DecimalField(max_digits=6, decimal_places=3, allow_null=True)
    credit_percent = serializers.DecimalField(max_digits=6, decimal_places=3)
    credit_amount = serializers.DecimalField(max_digits=14, decimal_places=2)
    currency = serializers.CharField()
    intervals = DownIntervalSerializer(many=True)
    exclusions = ExclusionSerializer(many=True)

    def get_covered_seconds(self, statement: Statement) -> int:
        return _seconds(statement.covered)

    def get_excluded_seconds(self, statement: Statement) -> int:
        return _seconds(statement.excluded)

    def get_down_seconds(self, statement: Statement) -> int:
        return _seconds(statement.down)

    def get_down_excluded_seconds(self, statement: Statement) -> int:
        return _seconds(statement.down_excluded)


class ContractAvailabilityViewSet(TenantScopedViewSet):
    model = Contract
    serializer_class = AvailabilitySerializer
    capabilities = {"*": (Capability.VIEW_CONTRACTS,)}

    def narrow(self, queryset: Any) -> Any:
        return selectors.contracts_visible_to(self.actor)

    @extend_schema(parameters=[PERIOD], responses=AvailabilitySerializer, summary="Availability statement")
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        contract = self.get_object()
        query = PeriodQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        statement = statement_for(contract, query.validated_data.get("period"), now=timezone.now())
        return Response(AvailabilitySerializer(statement).data)
