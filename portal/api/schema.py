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


# The error answers every operation may give (portal/api/exceptions.py, docs/api.md#conventions):
# drf-spectacular documents only the success, and a client (or schemathesis) reading the schema
# would take a 400, 401, 403 or 404 for something the API never says.
_ERROR = {
    "type": "object",
    "description": "Every error: `detail`, one readable sentence.",
    "properties": {"detail": {"type": "string"}},
    "required": ["detail"],
}
_VALIDATION_ERROR = {
    "type": "object",
    "description": "A 400: `detail` joins the `errors`; `field` is the input's path, or null.",
    "properties": {
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string", "nullable": True}, "message": {"type": "string"}},
                "required": ["field", "message"],
            },
        },
    },
    "required": ["detail", "errors"],
}
_ERRORS = {
    "400": ("Invalid input: a parameter or a field of the body", "ValidationError"),
    "401": ("No credentials, or a revoked or unknown token", "Error"),
    "403": ("Your role does not allow this", "Error"),
    "404": ("No such object, or one you may not see; a page past the end", "Error"),
}


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: the error answers of every operation, in our one shape."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", _ERROR)
    schemas.setdefault("ValidationError", _VALIDATION_ERROR)
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for code, (description, component) in _ERRORS.items():
                if code == "401" and operation.get("security") == [{}]:
                    continue  # no credentials needed (an empty requirement)
                operation["responses"].setdefault(
                    code,
                    {
                        "description": description,
                        "content": {
                            "application/json": {"schema": {"$ref": f"#/components/schemas/{component}"}}
                        },
                    },
                )
    return result
