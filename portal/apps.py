from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from portal.api import schema  # noqa: F401 - registers the OpenAPI auth extension


class PortalAdminConfig(AdminConfig):
    """The Django admin, opened to operators only (see `portal.admin_site.OperatorAdminSite`)."""

    default_site = "portal.admin_site.OperatorAdminSite"
