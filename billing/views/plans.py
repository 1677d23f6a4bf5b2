"""Finance's plan catalogue."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from billing import selectors
from billing.models import ContractStatus
from portal.roles import Capability
from portal.views import require_capability


@login_required
def plan_list(request: HttpRequest) -> HttpResponse:
    require_capability(request, Capability.MANAGE_PLANS)
    plans = selectors.plans_visible_to(request.user).annotate(
        contract_count=Count("contracts", filter=Q(contracts__status=ContractStatus.ACTIVE), distinct=True)
    )
    return render(request, "billing/plan_list.html", {"plans": plans})
