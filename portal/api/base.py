"""One base for every API view: authentication, capability by action, rows through `visible_to`.

    class SiteViewSet(TenantScopedViewSet, mixins.ListModelMixin, ...):
        model = Site
        capabilities = {"list": Capability.VIEW_FLEET, "create": Capability.MANAGE_FLEET, ...}
        filterset_class = SiteFilter                    # optional: ?filters of list (selectors)

        def narrow(self, queryset):                     # optional: select_related, a selector's
            return queryset.select_related("customer")  # further conditions, ordering

`get_queryset()` is final: it is `narrow(model.objects.visible_to(user))` with `visible_to(user)`
applied once more on whatever `narrow` returned, so a subclass can only narrow the rows a user
may reach, never widen them (NetBox's `restrict()` is the model). Another customer's id is
simply not in the queryset and answers 404 exactly like a missing one. A missing capability
answers 403 (the user learns what their role may do, never what another customer has).
"""

from __future__ import annotations

from typing import Any, ClassVar, final

from django.db import models
from django.http import HttpRequest
from django_filters.rest_framework import DjangoFilterBackend
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


class ListFilterBackend(DjangoFilterBackend):
    """The view's FilterSet (owned by the app's selectors) on lists only: a detail or an action
    reached with query parameters of its own (`?metric=`, `?period=`) is not filtered by them."""

    def filter_queryset(self, request: Request, queryset: Any, view: Any) -> Any:
        if getattr(view, "action", None) != "list":
            return queryset
        return super().filter_queryset(request, queryset, view)

    def to_html(self, request: Request, queryset: Any, view: Any) -> None:
        return None  # no filter form in the browsable API (its template needs django_filters installed)


class TenantScopedViewSet(viewsets.GenericViewSet):
    model: ClassVar[type[models.Model]]
    # action name -> capabilities (any one suffices); "*" is the default for other actions.
    capabilities: ClassVar[dict[str, tuple[Capability, ...]]] = {}
    permission_classes = (permissions.IsAuthenticated, HasCapability)
    filter_backends = (ListFilterBackend,)
    lookup_value_regex = "[0-9a-fA-F-]{36}"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The scope is applied here or nowhere: a subclass narrows through `narrow()`.
        for name in ("get_queryset", "scoped_queryset", "queryset"):
            if name in cls.__dict__:
                raise TypeError(f"{cls.__name__} must not define {name}; override narrow() instead")

    @property
    def actor(self) -> User:
        """The logged-in user (the permission classes ran first, so never anonymous)."""
        return request_user(self.request)

    def required_capabilities(self) -> tuple[Capability, ...]:
        return self.capabilities.get(self.action or "", self.capabilities.get("*", ()))

    def narrow(self, queryset: models.QuerySet[Any]) -> models.QuerySet[Any]:
        """Hook: the rows this view works on, from the user's scoped `queryset` (filter, join, order)."""
        return queryset

    @final
    def get_queryset(self) -> models.QuerySet[Any]:
        manager: Any = self.model._default_manager  # every model served here has visible_to()
        if getattr(self, "swagger_fake_view", False):
            return manager.none()
        user = self.request.user
        narrowed = self.narrow(manager.visible_to(user))
        if narrowed.model is not self.model:
            raise TypeError(f"{type(self).__name__}.narrow() returned rows of {narrowed.model.__name__}")
        # Again, last: whatever narrow() built on (or ignored), the user's scope bounds it.
        return narrowed.visible_to(user)  # type: ignore[attr-defined]
