"""Finance's plan catalogue and plan editor: list, detail (components, contracts, versions), new,
edit. Writes go through `billing.plans` (the API's services too)."""

from __future__ import annotations

import re
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.forms import Form
from django.http import HttpRequest, HttpResponse, HttpResponseBase, QueryDict
from django.shortcuts import get_object_or_404, redirect, render

from billing import plans, selectors
from billing.forms_plans import MAX_TIER_ROWS, MIN_TIER_ROWS, ComponentFormSet, PlanForm, PriceTermsForm
from billing.models import ContractStatus, Plan
from billing.rating import Pricing
from billing.views.common import _user
from portal.roles import Capability
from portal.views import require_capability

PREFIX = "c"  # the components formset


@login_required
def plan_list(request: HttpRequest) -> HttpResponse:
    require_capability(request, Capability.MANAGE_PLANS)
    plans_ = selectors.plans_visible_to(request.user).annotate(
        contract_count=Count("contracts", filter=Q(contracts__status=ContractStatus.ACTIVE), distinct=True)
    )
    return render(request, "billing/plan_list.html", {"plans": plans_})


@login_required
def plan_detail(request: HttpRequest, pk: str) -> HttpResponse:
    require_capability(request, Capability.MANAGE_PLANS)
    user = _user(request)
    plan = get_object_or_404(selectors.plans_visible_to(user), pk=pk)
    contracts = selectors.contracts_visible_to(user).filter(plan=plan).order_by("customer__name", "number")
    revisions = [(r, Pricing.from_json(r.pricing)) for r in plan.revisions.select_related("replaced_by")]
    return render(
        request,
        "billing/plans/detail.html",
        {"plan": plan, "contracts": contracts, "revisions": revisions, "billed": plans.plan_billed(plan)},
    )


@login_required
def plan_new(request: HttpRequest) -> HttpResponseBase:
    return _editor(request, None)


@login_required
def plan_edit(request: HttpRequest, pk: str) -> HttpResponseBase:
    require_capability(request, Capability.MANAGE_PLANS)  # before the lookup: 403, not 404
    plan = get_object_or_404(selectors.plans_visible_to(request.user), pk=pk)
    return _editor(request, plan)


def more_rows(data: QueryDict, which: str, prefix: str = PREFIX) -> QueryDict:
    """The posted form with one more blank component ("components") or tier row (the prefix of
    the form the row goes to: "c-0", or "o"): the "more rows" buttons that work without JS."""
    data = data.copy()
    sent = data.get(f"{prefix}-TOTAL_FORMS") or ""
    if which == "components" and sent.isdigit():
        data[f"{prefix}-TOTAL_FORMS"] = str(min(int(sent) + 1, 30))
    elif re.fullmatch(rf"{prefix}(-\d+)?", which):
        key = f"{which}-tier_rows"
        sent = data.get(key) or ""
        data[key] = str(min((int(sent) if sent.isdigit() else MIN_TIER_ROWS) + 1, MAX_TIER_ROWS))
    return data


def show_service_errors(exc: ValidationError, form: Form) -> None:
    """A rule of the service (unique code, currency with contracts…) next to its field."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, errors in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, errors)


def _editor(request: HttpRequest, plan: Plan | None) -> HttpResponseBase:
    require_capability(request, Capability.MANAGE_PLANS)
    user = _user(request)
    quiet = False  # rows were added: show the editor again without judging it half-done
    if request.method == "POST":
        data: QueryDict = request.POST
        more = data.get("more", "")
        if more:
            data, quiet = more_rows(data, more), True
        form = PlanForm(data)
        components = ComponentFormSet(data, prefix=PREFIX)
        if not quiet and form.is_valid() and components.is_valid():
            values: dict[str, Any] = dict(form.cleaned_data)
            try:
                if plan is None:
                    saved = plans.plan_create(actor=user, components=components.components(), **values)
                    messages.success(request, f"Plan {saved.name} created.")
                else:
                    old_version = plan.version
                    saved = plans.plan_update(
                        actor=user, plan=plan, components=components.components(), **values
                    )
                    if saved.version != old_version:
                        messages.success(
                            request,
                            f"Prices changed after invoices were finalized with version {old_version}: "
                            f"they are version {saved.version} now, version {old_version} is kept.",
                        )
                    else:
                        messages.success(request, f"Plan {saved.name} saved.")
            except ValidationError as exc:
                show_service_errors(exc, form)
            else:
                return redirect("plan_detail", pk=saved.pk)
    else:
        if plan is None:
            form = PlanForm()
            components = ComponentFormSet(prefix=PREFIX)
        else:
            existing = list(plan.components.all())
            form = PlanForm(initial=PlanForm.initial_of(plan))
            components = ComponentFormSet(
                prefix=PREFIX,
                initial=[PriceTermsForm.initial_of(c) for c in existing],
                tiers=[list(c.tiers or []) for c in existing],
            )
    return render(
        request,
        "billing/plans/edit.html",
        {
            "plan": plan,
            "form": form,
            "components": components,
            "quiet": quiet,
            "has_contracts": plan is not None and plan.contracts.exists(),
        },
        status=400 if request.method == "POST" and not quiet else 200,
    )
