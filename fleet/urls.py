from django.urls import path

from fleet import views

urlpatterns = [
    path("fleet/", views.fleet_overview, name="fleet_overview"),
    path("sites/", views.site_list, name="site_list"),
    path("sites/<uuid:pk>/", views.site_detail, name="site_detail"),
]
