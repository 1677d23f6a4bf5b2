"""/api/v1/: each app adds its routes to this router from its own `api/urls.py`."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from portal.api.views import ApiTokenViewSet, CustomerViewSet, MeView, TokenView, UserViewSet

router = SimpleRouter(trailing_slash=True)
router.register("customers", CustomerViewSet, basename="customer")
router.register("users", UserViewSet, basename="user")
router.register("tokens", ApiTokenViewSet, basename="api-token")

urlpatterns = [
    path("me/", MeView.as_view(), name="api-me"),
    path("auth/token/", TokenView.as_view(), name="api-token-obtain"),
    path("", include("fleet.api.urls")),
    path("", include("support.api.urls")),
    path("", include("billing.api.urls")),
    path("", include(router.urls)),
]
