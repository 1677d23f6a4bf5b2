from django.urls import path
from rest_framework.routers import SimpleRouter

from support.api.views import DisputeView, TicketViewSet

router = SimpleRouter(trailing_slash=True)
router.register("tickets", TicketViewSet, basename="ticket")

urlpatterns = [
    path("invoices/<uuid:pk>/dispute/", DisputeView.as_view(), name="invoice-dispute"),
    *router.urls,
]
