"""A contract's negotiated prices: finance sets, replaces and removes them (`billing.overrides`).

The contract page shows them to everyone who may see the contract (contract/_overrides.html).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponseBase, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from billing import overrides, selectors
from billing.forms_plans import OverrideForm
from billing.views.common import _user
from billing.views.plans import more_rows, show_service_errors
from portal.roles import Capability
from portal.views import require_capability

PREFIX = "o"


@login_required
def contract_overrides(request: HttpRequest, pk: str) -> HttpResponseBase:
    """The negotiated prices of a contract, and a form to set one (`?metric=` edits that one)."""
    require_capability(request, Capability.MANAGE_CONTRACTS)
    user = _user(request)
    contract = get_object_or_404(selectors.contracts_visible_to(user), pk=pk)
    current = list(contract.price_overrides.all())
    quiet = False
    status = 200
    if request.method == "POST":
        data: QueryDict = request.POST
        more = data.get("more", "")
        if more:
            data, quiet = more_rows(data, more, PREFIX), True
        form = OverrideForm(data, prefix=PREFIX)
        if not quiet and form.is_valid():
            try:
                override = overrides.override_set(
                    actor=user, contract=contract, note=form.cleaned_data["note"], **form.terms()
                )
            except ValidationError as exc:
                show_service_errors(exc, form)
            else:
                messages.success(
                    request,
                    f"Negotiated price for {override.label or override.metric} saved: "
                    "the next invoice run bills it.",
                )
                return redirect("contract_detail", pk=contract.pk)
        status = 200 if quiet else 400
    else:
        editing = next((o for o in current if o.metric == request.GET.get("metric")), None)
        if editing is not None:
            form = OverrideForm(
                prefix=PREFIX,
                initial={**OverrideForm.initial_of(editing), "note": editing.note},
                tiers=list(editing.tiers or []),
            )
        else:
            form = OverrideForm(prefix=PREFIX)
    return render(
        request,
        "billing/contract/overrides.html",
        {"contract": contract, "overrides": current, "form": form, "quiet": quiet, "prefix": PREFIX},
        status=status,
    )


@login_required
@require_POST
def contract_override_remove(request: HttpRequest, pk: str, metric: str) -> HttpResponseBase:
    require_capability(request, Capability.MANAGE_CONTRACTS)
    user = _user(request)
    contract = get_object_or_404(selectors.contracts_visible_to(user), pk=pk)
    try:
        overrides.override_remove(actor=user, contract=contract, metric=metric)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{metric} is billed at the plan's price again from the next run.")
    return redirect("contract_overrides", pk=contract.pk)
