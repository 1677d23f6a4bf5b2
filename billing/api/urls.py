from django.urls import path
from rest_framework.routers import SimpleRouter

from billing.api.availability import ContractAvailabilityViewSet
from billing.api.overrides import ContractPriceOverrideViewSet
from billing.api.payments import PaymentViewSet
from billing.api.views import (
    ContractViewSet,
    CreditNoteViewSet,
    InvoiceRunViewSet,
    InvoiceViewSet,
    PlanViewSet,
)

router = SimpleRouter(trailing_slash=True)
router.register("plans", PlanViewSet, basename="plan")
router.register("contracts", ContractViewSet, basename="contract")
router.register("invoice-runs", InvoiceRunViewSet, basename="invoice-run")
router.register("invoices", InvoiceViewSet, basename="invoice")
router.register("credit-notes", CreditNoteViewSet, basename="credit-note")
router.register("payments", PaymentViewSet, basename="payment")

# Files keep their extension without the router's trailing slash (the paths of docs/api.md, "Invoices").
urlpatterns = [
    path("invoices/export.csv", InvoiceViewSet.as_view({"get": "export_csv"}), name="invoice-export-csv"),
    path(
        "invoices/<uuid:pk>/lines/<int:line_id>/usage.csv",
        InvoiceViewSet.as_view({"get": "line_usage_csv"}),
        name="invoice-line-usage-csv",
    ),
    # A contract's negotiated prices, keyed by the metric they price (docs/api.md, "Negotiated prices").
    path(
        "contracts/<uuid:pk>/price-overrides/",
        ContractPriceOverrideViewSet.as_view({"get": "list", "post": "create"}),
        name="contract-price-overrides",
    ),
    path(
        "contracts/<uuid:pk>/price-overrides/<slug:metric>/",
        ContractPriceOverrideViewSet.as_view(
            {"get": "retrieve", "put": "update", "patch": "partial_update", "delete": "destroy"}
        ),
        name="contract-price-override",
    ),
    # The availability statement of a month (docs/api.md, "Availability").
    path(
        "contracts/<uuid:pk>/availability/",
        ContractAvailabilityViewSet.as_view({"get": "retrieve"}),
        name="contract-availability",
    ),
    *router.urls,
]
