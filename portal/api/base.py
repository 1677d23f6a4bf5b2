"""One base for every API view: authentication, capability by action, rows through `visible_to`.

    class SiteViewSet(TenantScopedViewSet, mixins.ListModelMixin, ...):
        model = Site
        capabilities = {"list": Capability.VIEW_FLEET, "create": Capability.MANAGE_FLEET, ...}

`get_queryset()` is `model.objects.visible_to(user)`, so another customer's id is simply not
in the queryset and answers 404 exactly like a missing one. A missing capability answers 403
(the user learns what their role may do, never what another customer has).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from django.http import HttpRequest
from rest_framework import exceptions, permissions, viewsets
from rest_framework.request import Request
from rest_framework.views import APIView

from portal.models import User
from portal.roles import Capability, can


def request_user(request: Request | HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User):
        raise exceptions.NotAuthenticated()
    return user


class HasCapability(permissions.BasePermission):
    message = "Your role does not allow this."

    def has_permission(self, request: Request, view: APIView) -> bool:
        required = view.required_capabilities() if hasattr(view, "required_capabilities") else ()
        return bool(request.user and request.user.is_authenticated) and (
            not required or any(can(request.user, c) for c in required)
        )


class TenantScopedViewSet(viewsets.GenericViewSet):
    model: ClassVar[type[models.Model]]
    # action name -> capabilities (any one suffices); "*" is the default for other actions.
    capabilities: ClassVar[dict[str, tuple[Capability, ...]]] = {}
    permission_classes = (permissions.IsAuthenticated, HasCapability)
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    @property
    def actor(self) -> User:
        """The logged-in user (the permission classes ran first, so never anonymous)."""
        return request_user(self.request)

    def required_capabilities(self) -> tuple[Capability, ...]:
        return self.capabilities.get(self.action or "", self.capabilities.get("*", ()))

    def scoped_queryset(self) -> models.QuerySet[Any]:
        return self.model.objects.visible_to(self.request.user)  # type: ignore[attr-defined]

    def get_queryset(self) -> models.QuerySet[Any]:
        if getattr(self, "swagger_fake_view", False):
            return self.model.objects.none()  # type: ignore[attr-defined]
        return self.scoped_queryset()
