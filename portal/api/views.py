from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal import services
from portal.api.base import TenantScopedViewSet, request_user
from portal.api.serializers import (
    CustomerSerializer,
    MeSerializer,
    UserInviteSerializer,
    UserSerializer,
    UserUpdateSerializer,
)
from portal.models import Customer, User
from portal.roles import Capability, can


class MeView(APIView):
    @extend_schema(responses=MeSerializer, summary="The logged-in user, their customer and capabilities")
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(request_user(request)).data)


class CustomerViewSet(
    TenantScopedViewSet,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
):
    """Customers (tenants). Customer users see their own; staff see all; operators onboard."""

    model = Customer
    serializer_class = CustomerSerializer
    capabilities = {
        "create": (Capability.MANAGE_CUSTOMERS,),
        "update": (Capability.MANAGE_CUSTOMERS,),
        "partial_update": (Capability.MANAGE_CUSTOMERS,),
    }

    def perform_create(self, serializer: serializers.BaseSerializer[Customer]) -> None:
        with transaction.atomic():
            customer = serializer.save()
            services.audit_record(actor=self.actor, action="customer.created", target=customer)

    def perform_update(self, serializer: serializers.BaseSerializer[Customer]) -> None:
        with transaction.atomic():
            customer = serializer.save()
            services.audit_record(
                actor=self.actor,
                action="customer.updated",
                target=customer,
                data=dict(self.request.data),
            )


_MANAGE_USERS = (Capability.MANAGE_CUSTOMER_USERS, Capability.MANAGE_ALL_USERS)


class UserViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Users. A customer admin manages their own customer's; operators manage everyone."""

    model = User
    serializer_class = UserSerializer
    capabilities = {"*": _MANAGE_USERS}

    def scoped_queryset(self) -> Any:
        return User.objects.visible_to(self.request.user).select_related("customer")

    @extend_schema(request=UserInviteSerializer, responses={201: UserSerializer}, summary="Invite a user")
    def create(self, request: Request) -> Response:
        data = UserInviteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = self.actor
        customer_id = data.validated_data.pop("customer")
        if can(actor, Capability.MANAGE_ALL_USERS):
            customer = (
                Customer.objects.visible_to(actor).filter(pk=customer_id).first() if customer_id else None
            )
            if customer_id and customer is None:
                raise serializers.ValidationError({"customer": ["Unknown customer."]})
        else:
            if customer_id and str(customer_id) != str(actor.customer_id):
                raise serializers.ValidationError({"customer": ["Unknown customer."]})
            customer = actor.customer
        user = services.user_invite(actor=actor, customer=customer, **data.validated_data)
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=UserUpdateSerializer, responses=UserSerializer, summary="Change role or (de)activate"
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        user = self.get_object()
        data = UserUpdateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            if "role" in data.validated_data:
                user = services.user_change_role(
                    actor=self.actor, user=user, role=data.validated_data["role"]
                )
            if "is_active" in data.validated_data:
                user = services.user_set_active(
                    actor=self.actor, user=user, active=data.validated_data["is_active"]
                )
        return Response(UserSerializer(user).data)
