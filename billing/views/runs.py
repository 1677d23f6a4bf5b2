"""Invoice runs: start one for a period, watch it, retry a failed one."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from billing.models import Invoice, InvoiceRun, InvoiceStatus
from billing.runs import invoice_run_retry, invoice_run_start
from billing.views.common import _last_month, _user
from portal.roles import Capability
from portal.validation import error_text
from portal.views import require_capability


@login_required
def run_list(request: HttpRequest) -> HttpResponseBase:
    require_capability(request, Capability.RUN_INVOICES)
    user = _user(request)
    if request.method == "POST":
        period = request.POST.get("period", "").strip()
        try:
            run = invoice_run_start(actor=user, period=period)
        except ValueError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"Invoice run for {run.period} started.")
        return redirect("invoice_run_list")
    runs = InvoiceRun.objects.select_related("started_by").order_by("-created_at")[:50]
    drafts = (
        Invoice.objects.filter(status=InvoiceStatus.DRAFT)
        .values("period")
        .annotate(n=Count("id"))
        .order_by("-period")
    )
    return render(
        request, "billing/run_list.html", {"runs": runs, "last_month": _last_month(user), "drafts": drafts}
    )


@login_required
@require_POST
def run_retry(request: HttpRequest, pk: str) -> HttpResponseBase:
    """Finance's button on a failed run: queue it again (docs/billing.md#the-invoice-run)."""
    require_capability(request, Capability.RUN_INVOICES)
    run = get_object_or_404(InvoiceRun.objects.visible_to(request.user), pk=pk)
    try:
        invoice_run_retry(actor=_user(request), run=run)
    except ValidationError as exc:
        messages.error(request, error_text(exc))
    else:
        messages.success(request, f"Invoice run for {run.period} queued again.")
    return redirect("invoice_run_list")
