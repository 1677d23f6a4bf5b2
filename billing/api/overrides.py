"""A contract's negotiated prices: `/api/v1/contracts/{id}/price-overrides/` and
`…/price-overrides/{metric}/` (docs/api.md, "Negotiated prices").

Rows come through the contract, scoped like every contract (`Contract.objects.visible_to`): a
customer reads its own contracts' negotiated prices, another customer's contract answers 404.
Finance and operators set, replace and remove them through `billing.overrides`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from billing import overrides, selectors
from billing.api.serializers import TierSerializer, validate_price_terms
from billing.models import Contract, ContractPriceOverride
from billing.rating import ChargeModel
from portal.api.base import TenantScopedViewSet
from portal.roles import Capability

METRIC = OpenApiParameter(
    "metric", OpenApiTypes.STR, OpenApiParameter.PATH, description="The counter metric it prices."
)


class PriceOverrideSerializer(serializers.ModelSerializer[ContractPriceOverride]):
    """A negotiated price: a plan component's terms for one meter, and the note the invoice line
    prints ("Negotiated price" when empty)."""

    tiers = TierSerializer(many=True, required=False)
    charge_model = serializers.ChoiceField(choices=ChargeModel.ALL)

    class Meta:
        model = ContractPriceOverride
        fields = [
            "metric", "label", "unit", "charge_model", "unit_price", "included_units", "package_size",
            "package_price", "tiers", "note", "updated_at",
        ]  # fmt: skip
        read_only_fields = ["updated_at"]
        # One per contract and meter: a second POST for a meter answers with the rule, in words.
        validators: list[Any] = []

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return validate_price_terms(attrs)


class PriceOverrideChangeSerializer(PriceOverrideSerializer):
    """PUT and PATCH: the meter is the one in the path."""

    class Meta(PriceOverrideSerializer.Meta):
        read_only_fields = ["metric", "updated_at"]


class ContractPriceOverrideViewSet(TenantScopedViewSet):
    model = Contract
    serializer_class = PriceOverrideSerializer
    pagination_class = None  # a handful per contract: a plain list
    capabilities = {
        "*": (Capability.VIEW_CONTRACTS,),
        "create": (Capability.MANAGE_CONTRACTS,),
        "update": (Capability.MANAGE_CONTRACTS,),
        "partial_update": (Capability.MANAGE_CONTRACTS,),
        "destroy": (Capability.MANAGE_CONTRACTS,),
    }

    def narrow(self, queryset: Any) -> Any:
        return selectors.contracts_visible_to(self.actor)

    def _override(self, contract: Contract, metric: str | None) -> ContractPriceOverride:
        found = contract.price_overrides.filter(metric=metric).first()
        if found is None:
            raise NotFound("This contract has no negotiated price for that metric.")
        return found

    def _set(self, contract: Contract, values: dict[str, Any]) -> ContractPriceOverride:
        return overrides.override_set(actor=self.actor, contract=contract, **values)

    @extend_schema(responses=PriceOverrideSerializer(many=True), summary="A contract's negotiated prices")
    def list(self, request: Request, pk: str | None = None) -> Response:
        contract = self.get_object()
        return Response(PriceOverrideSerializer(contract.price_overrides.all(), many=True).data)

    @extend_schema(
        request=PriceOverrideSerializer,
        responses={201: PriceOverrideSerializer},
        summary="Negotiate a price for one meter",
    )
    def create(self, request: Request, pk: str | None = None) -> Response:
        contract = self.get_object()
        data = PriceOverrideSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if contract.price_overrides.filter(metric=values["metric"]).exists():
            raise ValidationError(
                {"metric": ["This contract has a negotiated price for this metric: PUT or PATCH it."]}
            )
        override = self._set(contract, values)
        return Response(PriceOverrideSerializer(override).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[METRIC], responses=PriceOverrideSerializer, summary="One negotiated price")
    def retrieve(self, request: Request, pk: str | None = None, metric: str | None = None) -> Response:
        return Response(PriceOverrideSerializer(self._override(self.get_object(), metric)).data)

    @extend_schema(
        parameters=[METRIC],
        request=PriceOverrideChangeSerializer,
        responses=PriceOverrideSerializer,
        summary="Replace a negotiated price",
    )
    def update(self, request: Request, pk: str | None = None, metric: str | None = None) -> Response:
        return self._change(request, metric, partial=False)

    @extend_schema(
        parameters=[METRIC],
        request=PriceOverrideChangeSerializer,
        responses=PriceOverrideSerializer,
        summary="Change a negotiated price",
    )
    def partial_update(self, request: Request, pk: str | None = None, metric: str | None = None) -> Response:
        return self._change(request, metric, partial=True)

    def _change(self, request: Request, metric: str | None, *, partial: bool) -> Response:
        contract = self.get_object()
        current = self._override(contract, metric)
        incoming: Any = request.data
        if partial and isinstance(incoming, Mapping):
            # What the request leaves out stays as it is: validate the merged terms as a whole.
            incoming = {**PriceOverrideChangeSerializer(current).data, **incoming}
        data = PriceOverrideChangeSerializer(data=incoming)
        data.is_valid(raise_exception=True)
        values = {k: v for k, v in data.validated_data.items() if k != "metric"}
        override = self._set(contract, {"metric": current.metric, **values})
        return Response(PriceOverrideSerializer(override).data)

    @extend_schema(
        parameters=[METRIC], request=None, responses={204: None}, summary="Remove a negotiated price"
    )
    def destroy(self, request: Request, pk: str | None = None, metric: str | None = None) -> Response:
        contract = self.get_object()
        self._override(contract, metric)
        overrides.override_remove(actor=self.actor, contract=contract, metric=str(metric))
        return Response(status=status.HTTP_204_NO_CONTENT)
