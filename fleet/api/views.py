from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from fleet import services
from fleet.api.serializers import SiteCreateSerializer, SiteSerializer
from fleet.models import Site
from portal.api.base import TenantScopedViewSet
from portal.models import Customer
from portal.roles import Capability


class SiteViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    model = Site
    serializer_class = SiteSerializer
    capabilities = {"*": (Capability.VIEW_FLEET,), "create": (Capability.MANAGE_FLEET,)}

    @extend_schema(request=SiteCreateSerializer, responses={201: SiteSerializer}, summary="Create a site")
    def create(self, request: Request) -> Response:
        data = SiteCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        customer = Customer.objects.visible_to(request.user).filter(pk=values.pop("customer")).first()
        if customer is None:
            raise serializers.ValidationError({"customer": ["Unknown customer."]})
        try:
            site = services.site_create(actor=self.actor, customer=customer, **values)
        except ValidationError as exc:
            raise serializers.ValidationError(exc.message_dict) from exc
        return Response(SiteSerializer(site).data, status=status.HTTP_201_CREATED)
