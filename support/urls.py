from django.urls import path

from support import views

urlpatterns = [
    path("support/tickets/", views.ticket_list, name="ticket_list"),
    path("support/tickets/new/", views.ticket_new, name="ticket_new"),
    path("support/tickets/<uuid:pk>/", views.ticket_detail, name="ticket_detail"),
    path("support/tickets/<uuid:pk>/<str:action>/", views.ticket_action, name="ticket_action"),
    path("support/disputes/<uuid:invoice_pk>/", views.dispute_new, name="dispute_new"),
    path("support/sla/", views.sla_report, name="sla_report"),
]
