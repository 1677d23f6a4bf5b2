"""OpenAPI descriptions of our authentication schemes and list filters (drf-spectacular extensions)."""

from typing import Any

from drf_spectacular.contrib.django_filters import DjangoFilterExtension
from drf_spectacular.extensions import OpenApiAuthenticationExtension


class TokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "portal.tokens.TokenAuthentication"
    name = "tokenAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Token <token>` from POST /api/v1/auth/token/.",
        }


class ListFilterBackendExtension(DjangoFilterExtension):
    """The FilterSet's parameters on list operations only, as `ListFilterBackend` applies them
    (drf-spectacular would also list them on detail actions that answer a list, e.g. heartbeats)."""

    target_class = "portal.api.base.ListFilterBackend"
    priority = 1

    def get_schema_operation_parameters(self, auto_schema: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if getattr(auto_schema.view, "action", None) != "list":
            return []
        return super().get_schema_operation_parameters(auto_schema, *args, **kwargs)
