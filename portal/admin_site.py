from django.contrib import admin
from django.http import HttpRequest

from portal.roles import Capability, can


class OperatorAdminSite(admin.AdminSite):
    """The Django admin, for operators only."""

    site_header = "Fleetport operations"
    site_title = "Fleetport admin"
    index_title = "Operations"

    def has_permission(self, request: HttpRequest) -> bool:
        return can(request.user, Capability.USE_ADMIN)
