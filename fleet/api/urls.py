from django.urls import path
from rest_framework.routers import SimpleRouter

from fleet.api.exclusions import StatusExclusionViewSet
from fleet.api.health import AssetHealthViewSet
from fleet.api.readings import ImplausibleReadingViewSet
from fleet.api.thresholds import AssetThresholdViewSet
from fleet.api.views import AlarmViewSet, AssetModelViewSet, AssetViewSet, DeviceViewSet, SiteViewSet
from fleet.api.windows import MaintenanceWindowViewSet

router = SimpleRouter(trailing_slash=True)
router.register("sites", SiteViewSet, basename="site")
router.register("asset-models", AssetModelViewSet, basename="asset-model")
router.register("assets", AssetViewSet, basename="asset")
router.register("devices", DeviceViewSet, basename="device")
router.register("alarms", AlarmViewSet, basename="alarm")
router.register("implausible-readings", ImplausibleReadingViewSet, basename="implausible-reading")
router.register("maintenance-windows", MaintenanceWindowViewSet, basename="maintenance-window")
router.register("status-exclusions", StatusExclusionViewSet, basename="status-exclusion")

urlpatterns = [
    path("assets/<uuid:pk>/health/", AssetHealthViewSet.as_view({"get": "retrieve"}), name="asset-health"),
    path(
        "assets/<uuid:pk>/thresholds/",
        AssetThresholdViewSet.as_view({"get": "list"}),
        name="asset-threshold-list",
    ),
    path(
        "assets/<uuid:pk>/thresholds/<uuid:rule>/",
        AssetThresholdViewSet.as_view({"get": "retrieve", "put": "update", "delete": "destroy"}),
        name="asset-threshold-detail",
    ),
    path(
        "assets/<uuid:pk>/telemetry.csv",
        AssetViewSet.as_view({"get": "telemetry_csv"}),
        name="asset-telemetry-csv",
    ),
    *router.urls,
]
