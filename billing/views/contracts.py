"""Contract pages: the list, a new contract, one contract with its usage to date."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone

from billing import metering, selectors, services
from billing.forms import ContractForm
from billing.models import ContractStatus
from billing.views.common import _user
from portal.roles import Capability, can
from portal.validation import error_text
from portal.views import require_capability


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
