from django.urls import path

from fleet import exclusion_views, onboarding, threshold_views, views, window_views

urlpatterns = [
    path("fleet/", views.fleet_overview, name="fleet_overview"),
    path("fleet/assets/<uuid:pk>/", views.asset_detail, name="asset_detail"),
    path("alarms/", views.alarm_centre, name="alarm_centre"),
    path("fleet/assets/<uuid:pk>/devices/", views.device_install, name="device_install"),
    path("fleet/devices/<uuid:pk>/rotate/", views.device_rotate, name="device_rotate"),
    path("fleet/devices/<uuid:pk>/revoke/", views.device_revoke, name="device_revoke"),
    path("fleet/alarms/<uuid:pk>/<str:action>/", views.alarm_action, name="alarm_action"),
    path("fleet/readings/<uuid:pk>/<str:action>/", views.reading_decide, name="reading_decide"),
    path(
        "fleet/assets/<uuid:pk>/thresholds/<uuid:rule_pk>/",
        threshold_views.threshold_edit,
        name="threshold_edit",
    ),
    path("fleet/maintenance/", window_views.maintenance_calendar, name="maintenance_calendar"),
    path("fleet/maintenance/new/", window_views.window_new, name="maintenance_window_new"),
    path("fleet/maintenance/<uuid:pk>/", window_views.window_detail, name="maintenance_window"),
    path("fleet/maintenance/<uuid:pk>/move/", window_views.window_move, name="maintenance_window_move"),
    path(
        "fleet/maintenance/<uuid:pk>/<str:action>/",
        window_views.window_action,
        name="maintenance_window_action",
    ),
    path(
        "fleet/assets/<uuid:pk>/exclusions/",
        exclusion_views.exclusion_mark_view,
        name="status_exclusion_mark",
    ),
    path(
        "fleet/exclusions/<uuid:pk>/remove/",
        exclusion_views.exclusion_remove_view,
        name="status_exclusion_remove",
    ),
    path("sites/", views.site_list, name="site_list"),
    path("sites/<uuid:pk>/", views.site_detail, name="site_detail"),
    path("customers/<uuid:pk>/onboard/site/", onboarding.onboard_site, name="onboard_site"),
    path("customers/<uuid:pk>/onboard/asset/", onboarding.onboard_asset, name="onboard_asset"),
    path("customers/<uuid:pk>/onboard/device/", onboarding.onboard_device, name="onboard_device"),
]
