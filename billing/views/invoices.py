"""The invoice list (what finance reviews and customers download)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from billing import selectors
from billing.models import InvoiceStatus
from billing.views.common import _last_month, _user
from portal.filters import chosen, page_filters
from portal.models import Customer
from portal.roles import Capability, can
from portal.views import require_capability


@login_required
def invoice_list(request: HttpRequest) -> HttpResponse:
    require_capability(request, Capability.VIEW_INVOICES)
    user = _user(request)
    filterset = page_filters(request, selectors.InvoiceFilter, selectors.invoices_visible_to(user))
    invoices = filterset.qs
    filters = chosen(filterset)
    customers = Customer.objects.visible_to(user).order_by("name") if user.customer_id is None else []
    # One footer per currency, each saying what it adds: never one count or sum across
    # currencies; a voided invoice is listed but owes nothing, so it is left out of the sums.
    live = ~Q(status=InvoiceStatus.VOID)
    totals = (
        invoices.order_by()
        .values("currency")
        .annotate(
            count=Count("pk", filter=live),
            voided=Count("pk", filter=~live),
            total=Sum("total", filter=live),
            amount_due=Sum("amount_due", filter=live),
        )
        .order_by("currency")
    )
    page = Paginator(invoices.order_by("-period", "customer__name"), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "billing/invoice_list.html",
        {
            "page": page,
            "filters": filters,
            "statuses": InvoiceStatus.choices,
            "customers": customers,
            "totals": totals,
            "can_run": can(user, Capability.RUN_INVOICES),
            "last_month": _last_month(user),
            "export_query": f"?period={filters['period']}" if filters["period"] else "",
        },
    )
