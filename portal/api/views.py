from __future__ import annotations

from typing import Any

from axes.exceptions import AxesBackendPermissionDenied
from django.contrib.auth import authenticate
from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import mixins, permissions, serializers, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from portal import selectors, services
from portal.api.base import TenantScopedViewSet, request_user
from portal.api.serializers import (
    ApiTokenSerializer,
    CustomerSerializer,
    ErrorSerializer,
    InvitationSerializer,
    MeSerializer,
    TokenRequestSerializer,
    TokenResponseSerializer,
    UserInviteSerializer,
    UserSerializer,
    UserUpdateSerializer,
)
from portal.models import ApiToken, Customer, User
from portal.roles import Capability, can
from portal.tenancy import scoped_get
from portal.tokens import TokenAuthentication, api_token_issue, api_token_revoke


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
    """Customers (tenants). Customer users see their own; staff see all; operators onboard and
    change any field; finance changes the billing identity and the tax rate (any other field
    changed answers 403, `portal.services.customer_update`)."""

    model = Customer
    serializer_class = CustomerSerializer
    capabilities = {
        "create": (Capability.MANAGE_CUSTOMERS,),
        "update": (Capability.MANAGE_CUSTOMERS, Capability.EDIT_BILLING_IDENTITY),
        "partial_update": (Capability.MANAGE_CUSTOMERS, Capability.EDIT_BILLING_IDENTITY),
    }

    def perform_create(self, serializer: serializers.BaseSerializer[Customer]) -> None:
        serializer.instance = services.customer_create(actor=self.actor, **serializer.validated_data)

    def perform_update(self, serializer: serializers.BaseSerializer[Customer]) -> None:
        assert isinstance(serializer.instance, Customer)
        serializer.instance = services.customer_update(
            actor=self.actor, customer=serializer.instance, **serializer.validated_data
        )


_MANAGE_USERS = (Capability.MANAGE_CUSTOMER_USERS, Capability.MANAGE_ALL_USERS)


class UserViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Users. A customer admin manages their own customer's; operators manage everyone."""

    model = User
    serializer_class = UserSerializer
    capabilities = {"*": _MANAGE_USERS}

    def narrow(self, queryset: Any) -> Any:
        return selectors.without_pending_invitees(queryset.select_related("customer"), actor=self.actor)

    @extend_schema(
        request=UserInviteSerializer,
        responses={
            201: PolymorphicProxySerializer(
                component_name="InvitationAnswer",
                serializers=[UserSerializer, InvitationSerializer],
                resource_type_field_name=None,
            )
        },
        summary="Invite a user",
        description="Operators get the user; a customer admin gets the invitation, whoever owns the address.",
    )
    def create(self, request: Request) -> Response:
        data = UserInviteSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        actor = self.actor
        customer_id = data.validated_data.pop("customer")
        customer: Customer | None
        if customer_id:  # a customer admin's scope is their own customer: another is unknown
            customer = scoped_get(Customer.objects.visible_to(actor), customer_id, field="customer")
        else:  # operators invite staff; a customer admin invites into their own customer
            customer = None if can(actor, Capability.MANAGE_ALL_USERS) else actor.customer
        user = services.user_invite(actor=actor, customer=customer, **data.validated_data)
        if can(actor, Capability.MANAGE_ALL_USERS):
            return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)
        answer = {
            "email": User.objects.normalize_email(data.validated_data["email"]).lower(),
            "full_name": data.validated_data["full_name"],
            "role": data.validated_data["role"],
            "detail": services.INVITATION_SENT,
        }
        return Response(InvitationSerializer(answer).data, status=status.HTTP_201_CREATED)

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


class TokenView(APIView):
    """Exchange e-mail and password for an API token; DELETE revokes the token in use."""

    authentication_classes = [TokenAuthentication]
    permission_classes = [permissions.AllowAny]
    throttle_classes: list[Any] = []

    @extend_schema(
        request=TokenRequestSerializer,
        responses={
            201: TokenResponseSerializer,
            429: OpenApiResponse(ErrorSerializer, description="Too many failed log-ins; try again later."),
        },
        summary="Get an API token",
        auth=[],
    )
    def post(self, request: Request) -> Response:
        data = TokenRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            # Through django.contrib.auth, so django-axes counts failures and locks out.
            user = authenticate(
                request._request,
                username=data.validated_data["email"].lower(),
                password=data.validated_data["password"],
            )
        except AxesBackendPermissionDenied:
            return Response({"detail": "Too many failed attempts; try again later."}, status=429)
        if not isinstance(user, User) or (user.customer is not None and not user.customer.is_active):
            raise serializers.ValidationError("Unable to log in with these credentials.")
        token = api_token_issue(user=user, name=data.validated_data["name"])
        return Response({"token": token}, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={204: None}, summary="Revoke the token in use")
    def delete(self, request: Request) -> Response:
        if not isinstance(request.auth, ApiToken):
            return Response(
                {"detail": "Send the token to revoke as Authorization: Token …"},
                status=401,
                headers={"WWW-Authenticate": "Token"},
            )
        api_token_revoke(token=request.auth, actor=request_user(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ApiTokenViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """API tokens: your own; a customer admin sees and revokes their customer's."""

    model = ApiToken
    serializer_class = ApiTokenSerializer

    def narrow(self, queryset: Any) -> Any:
        return queryset.select_related("user")

    @extend_schema(request=None, responses=ApiTokenSerializer, summary="Revoke a token")
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str | None = None) -> Response:
        token = api_token_revoke(token=self.get_object(), actor=self.actor)
        return Response(ApiTokenSerializer(token).data)
