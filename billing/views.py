"""Billing pages: contracts with usage to date, invoices, invoice runs, plans and revenue."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal, InvalidOperation

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q, Sum
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing import metering, selectors, services
from billing.forms import ContractForm
from billing.models import (
    ContractStatus,
    Invoice,
    InvoiceLine,
    InvoiceRun,
    InvoiceStatus,
)
from billing.runs import invoice_run_retry, invoice_run_start
from portal.filters import chosen, page_filters
from portal.models import Customer, User
from portal.roles import Capability, can
from portal.validation import error_text
from portal.views import require_capability


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _last_month(user: User) -> str:
    zone = user.customer.time_zone if user.customer else "UTC"
    return metering.period_containing(timezone.now(), zone).previous().label


@login_required
def contract_list(request: HttpRequest) -> HttpResponse:
    require_capability(request, Capability.VIEW_CONTRACTS)
    user = _user(request)
    contracts = selectors.contracts_visible_to(user).annotate(asset_count=Count("coverages", distinct=True))
    status = request.GET.get("status", "")
    if status in ContractStatus.values:
        contracts = contracts.filter(status=status)
    search = request.GET.get("q", "").strip()
    if search:
        contracts = contracts.filter(Q(number__icontains=search) | Q(customer__name__icontains=search))
    page = Paginator(contracts.order_by("customer__name", "number"), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "billing/contract_list.html",
        {
            "page": page,
            "status": status,
            "search": search,
            "statuses": ContractStatus.choices,
            "perms_manage": can(user, Capability.MANAGE_CONTRACTS),
        },
    )


@login_required
def contract_new(request: HttpRequest) -> HttpResponseBase:
    require_capability(request, Capability.MANAGE_CONTRACTS)
    user = _user(request)
    form = ContractForm(request.POST or None, user=user)
    if request.method == "POST" and form.is_valid():
        try:
            contract = services.contract_create(actor=user, **form.service_kwargs())
        except ValidationError as exc:
            form.add_error(None, error_text(exc))
        else:
            messages.success(request, f"Contract {contract.number} created.")
            return redirect("contract_detail", pk=contract.pk)
    return render(request, "billing/contract_new.html", {"form": form})


@login_required
def contract_detail(request: HttpRequest, pk: str) -> HttpResponse:
    require_capability(request, Capability.VIEW_CONTRACTS)
    user = _user(request)
    contract = get_object_or_404(selectors.contracts_visible_to(user), pk=pk)
    coverages = contract.coverages.select_related("asset").order_by("asset__serial_number")
    now = timezone.now()
    current = metering.period_containing(now, contract.customer.time_zone)
    label = request.GET.get("period") or current.label
    try:
        metering.parse_period(label)
    except ValueError:
        label = current.label
    usage = selectors.contract_usage(contract, label, now=now) if can(user, Capability.VIEW_USAGE) else None
    chosen = metering.period_of(label, contract.customer.time_zone)
    periods = [current]
    for _ in range(5):
        periods.append(periods[-1].previous())
    invoices = (
        selectors.invoices_visible_to(user).filter(contract=contract).order_by("-period")[:12]
        if can(user, Capability.VIEW_INVOICES)
        else []
    )
    sla = [
        (p, contract.first_response_minutes.get(p), contract.resolution_minutes.get(p))
        for p in ("P1", "P2", "P3", "P4")
    ]
    return render(
        request,
        "billing/contract_detail.html",
        {
            "contract": contract,
            "coverages": coverages,
            "usage": usage,
            "period": label,
            "periods": [p.label for p in periods],
            "is_current": label == current.label,
            "invoices": invoices,
            "sla": sla,
            "components": contract.plan.components.all(),
            "chart_spec": {
                "contract": str(contract.pk),
                "period": label,
                "days": [str(chosen.first_day), str(chosen.last_day)],
                "assets": [str(c.asset_id) for c in coverages],
                "meters": [
                    {"metric": c.metric, "label": c.label or c.metric, "unit": c.unit}
                    for c in contract.plan.components.all()
                ],
            },
        },
    )


@login_required
def invoice_list(request: HttpRequest) -> HttpResponse:
    require_capability(request, Capability.VIEW_INVOICES)
    user = _user(request)
    filterset = page_filters(request, selectors.InvoiceFilter, selectors.invoices_visible_to(user))
    invoices = filterset.qs
    filters = chosen(filterset)
    customers = Customer.objects.visible_to(user).order_by("name") if user.customer_id is None else []
    totals = invoices.values("currency").annotate(total=Sum("total")).order_by("currency")
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


@login_required
def invoice_detail(request: HttpRequest, pk: str) -> HttpResponse:
    require_capability(request, Capability.VIEW_INVOICES)
    user = _user(request)
    invoice = get_object_or_404(selectors.invoices_visible_to(user), pk=pk)
    lines = list(invoice.lines.order_by("position"))
    credited = sum((n.total for n in invoice.credit_notes.all()), Decimal("0"))
    return render(
        request,
        "billing/invoice_detail.html",
        {
            "invoice": invoice,
            "lines": lines,
            "credit_notes": invoice.credit_notes.order_by("created_at"),
            "credited": credited,
            "can_run": can(user, Capability.RUN_INVOICES),
            "can_dispute": can(user, Capability.DISPUTE_INVOICES) and invoice.status in ("finalized", "paid"),
            # Dispute tickets (support links them to the invoice; shown to who may see the invoice).
            "disputes": invoice.tickets.order_by("created_at") if hasattr(invoice, "tickets") else [],
            "tax_percent": format((invoice.tax_rate * 100).normalize(), "f"),
            "line_spec": {"invoice": str(invoice.pk)},
        },
    )


INVOICE_ACTIONS = ("finalize", "void", "mark-paid", "credit-note")


@login_required
@require_POST
def invoice_action(request: HttpRequest, pk: str, action: str) -> HttpResponseBase:
    require_capability(request, Capability.RUN_INVOICES)
    user = _user(request)
    invoice = get_object_or_404(selectors.invoices_visible_to(user), pk=pk)
    if action not in INVOICE_ACTIONS:
        return redirect("invoice_detail", pk=invoice.pk)
    try:
        if action == "finalize":
            invoice = services.invoice_finalize(actor=user, invoice=invoice)
            messages.success(request, f"Finalized as {invoice.number}.")
        elif action == "void":
            services.invoice_void(actor=user, invoice=invoice, reason=request.POST.get("reason", ""))
            messages.success(request, "Invoice voided. The next run for its period makes a new draft.")
        elif action == "mark-paid":
            services.invoice_mark_paid(actor=user, invoice=invoice)
            messages.success(request, "Payment recorded.")
        else:
            try:
                amount = Decimal(request.POST.get("amount", "").strip().replace(",", "."))
            except InvalidOperation:
                raise ValidationError({"amount": "Give the amount as a number, e.g. 25.00."}) from None
            if not amount.is_finite():
                raise ValidationError({"amount": "Give the amount as a number, e.g. 25.00."})
            note = services.credit_note_create(
                actor=user, invoice=invoice, amount=amount, reason=request.POST.get("reason", "")
            )
            messages.success(request, f"Credit note {note.number} issued: {note.total} {note.currency}.")
    except ValidationError as exc:
        messages.error(request, error_text(exc))
    return redirect("invoice_detail", pk=invoice.pk)


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
def plan_list(request: HttpRequest) -> HttpResponse:
    require_capability(request, Capability.MANAGE_PLANS)
    plans = selectors.plans_visible_to(request.user).annotate(
        contract_count=Count("contracts", filter=Q(contracts__status=ContractStatus.ACTIVE), distinct=True)
    )
    return render(request, "billing/plan_list.html", {"plans": plans})


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
