from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out

        from portal import live
        from portal.api import schema  # noqa: F401 - registers the OpenAPI auth extension

        def close_sockets(sender: object, user: object = None, **kwargs: object) -> None:
            if user is not None:
                live.close_user_sockets(user.pk)  # type: ignore[attr-defined]

        # Django's own auth signal: a logout ends that user's live sockets too.
        user_logged_out.connect(close_sockets, weak=False, dispatch_uid="portal.close_sockets_on_logout")


class PortalAdminConfig(AdminConfig):
    """The Django admin, opened to operators only (see `portal.admin_site.OperatorAdminSite`)."""

    default_site = "portal.admin_site.OperatorAdminSite"
