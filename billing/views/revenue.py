"""Billed revenue by customer and billed usage by meter."""

from __future__ import annotations

from collections import defaultdict

from django.contrib.auth.decorators import login_required
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from billing.models import Invoice, InvoiceLine, InvoiceStatus
from portal.roles import Capability
from portal.views import require_capability


@login_required
def revenue(request: HttpRequest) -> HttpResponse:
    """Billed revenue by customer and billed usage by meter, per month (finalized and paid invoices)."""
    require_capability(request, Capability.RUN_INVOICES)
    billed = Invoice.objects.visible_to(request.user).filter(
        status__in=[InvoiceStatus.FINALIZED, InvoiceStatus.PAID]
    )
    by_customer = (
        billed.values("period", "customer__name", "currency")
        .annotate(total=Sum("subtotal"))
        .order_by("period")
    )
    by_meter = (
        InvoiceLine.objects.filter(invoice__in=billed, kind="usage")
        .values("period", "metric")
        .annotate(quantity=Sum("quantity"), amount=Sum("amount"))
        .order_by("period")
    )
    revenue_series: dict[str, dict[str, str]] = defaultdict(dict)
    for row in by_customer:
        revenue_series[f"{row['customer__name']} ({row['currency']})"][row["period"]] = str(row["total"])
    usage_series: dict[str, dict[str, str]] = defaultdict(dict)
    amount_series: dict[str, dict[str, str]] = defaultdict(dict)
    for meter in by_meter:
        usage_series[meter["metric"]][meter["period"]] = str(meter["quantity"])
        amount_series[meter["metric"]][meter["period"]] = str(meter["amount"])
    return render(
        request,
        "billing/revenue.html",
        {
            "has_data": bool(revenue_series),
            "chart_data": {"revenue": revenue_series, "usage": usage_series, "usage_amount": amount_series},
            "rows": by_customer.order_by("-period", "customer__name")[:200],
        },
    )
