"""/api/v1/: each app adds its routes to this router from its own `api/urls.py`."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from portal.api.views import CustomerViewSet, MeView, UserViewSet

router = SimpleRouter(trailing_slash=True)
router.register("customers", CustomerViewSet, basename="customer")
router.register("users", UserViewSet, basename="user")

urlpatterns = [
    path("me/", MeView.as_view(), name="api-me"),
    path("", include("fleet.api.urls")),
    path("", include(router.urls)),
]
