"""Who owes what: issued invoices past their due date with something still due (finance)."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Max, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from billing import payments, selectors
from billing.models import InvoiceStatus
from billing.views.common import _user
from portal.roles import Capability
from portal.views import require_capability


@login_required
def overdue_list(request: HttpRequest) -> HttpResponse:
    require_capability(request, Capability.RECORD_PAYMENTS)
    user = _user(request)
    overdue = (
        selectors.invoices_visible_to(user)
        .filter(status=InvoiceStatus.FINALIZED, overdue_since__isnull=False, amount_due__gt=0)
        .annotate(reminder_count=Count("reminders"), last_reminder=Max("reminders__days_overdue"))
    )
    totals = overdue.values("currency").annotate(due=Sum("amount_due"), n=Count("id")).order_by("currency")
    page = Paginator(overdue.order_by("overdue_since", "customer__name", "number"), 50).get_page(
        request.GET.get("page")
    )
    rows = [(invoice, payments.days_overdue(invoice)) for invoice in page]
    steps = ", ".join(str(d) for d in sorted(settings.BILLING_REMINDER_DAYS))
    return render(
        request,
        "billing/overdue.html",
        {"page": page, "rows": rows, "totals": totals, "reminder_days": steps},
    )
