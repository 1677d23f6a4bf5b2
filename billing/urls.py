from django.urls import path

from billing import views
from billing.views import availability as availability_views
from billing.views import overrides as override_views
from billing.views import plans as plan_views

urlpatterns = [
    path("billing/contracts/", views.contract_list, name="contract_list"),
    path("billing/contracts/new/", views.contract_new, name="contract_new"),
    path("billing/contracts/<uuid:pk>/", views.contract_detail, name="contract_detail"),
    path("billing/invoices/", views.invoice_list, name="invoice_list"),
    path("billing/overdue/", views.overdue_list, name="overdue_list"),
    path("billing/invoices/<uuid:pk>/", views.invoice_detail, name="invoice_detail"),
    path("billing/invoices/<uuid:pk>/<str:action>/", views.invoice_action, name="invoice_action"),
    path("billing/runs/", views.run_list, name="invoice_run_list"),
    path("billing/runs/<uuid:pk>/retry/", views.run_retry, name="invoice_run_retry"),
    path("billing/plans/", views.plan_list, name="plan_list"),
    path("billing/plans/new/", plan_views.plan_new, name="plan_new"),
    path("billing/plans/<uuid:pk>/", plan_views.plan_detail, name="plan_detail"),
    path("billing/plans/<uuid:pk>/edit/", plan_views.plan_edit, name="plan_edit"),
    path(
        "billing/contracts/<uuid:pk>/price-overrides/",
        override_views.contract_overrides,
        name="contract_overrides",
    ),
    path(
        "billing/contracts/<uuid:pk>/price-overrides/<slug:metric>/remove/",
        override_views.contract_override_remove,
        name="contract_override_remove",
    ),
    path("billing/revenue/", views.revenue, name="revenue"),
    path(
        "billing/contracts/<uuid:pk>/availability/",
        availability_views.availability_statement,
        name="contract_availability",
    ),
    path(
        "billing/contracts/<uuid:pk>/availability/pdf/",
        availability_views.availability_statement_pdf,
        name="contract_availability_pdf",
    ),
]
