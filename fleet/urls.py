from django.urls import path

from fleet import views

urlpatterns = [
    path("sites/", views.site_list, name="site_list"),
    path("sites/<uuid:pk>/", views.site_detail, name="site_detail"),
]
