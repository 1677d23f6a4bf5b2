"""The availability statement of a contract and month: the page and its PDF
(docs/availability.md, "The statement").

    /billing/contracts/<id>/availability/?period=YYYY-MM       the page
    /billing/contracts/<id>/availability/pdf/?period=YYYY-MM   the PDF (WeasyPrint)

A customer's users with VIEW_CONTRACTS read their own contracts' statements; staff all. The
contract is found through the user's scoped contracts, so another customer's id is a 404.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.utils import timezone

from billing import availability, metering, selectors
from billing.models import Contract
from billing.pdf import html_to_pdf
from billing.views.common import _user
from portal import formatting
from portal.roles import Capability
from portal.views import require_capability


def statement_for(contract: Contract, label: str | None, *, now: datetime) -> availability.Statement:
    """The statement of `label` (the last complete month when missing or malformed)."""
    zone = contract.customer.time_zone
    try:
        metering.parse_period(label or "")
    except ValueError:
        label = metering.period_containing(now, zone).previous().label
    assert label is not None
    return availability.statement(contract, metering.period_of(label, zone), now=now)


def statement_context(statement: availability.Statement) -> dict[str, object]:
    return {
        "statement": statement,
        "contract": statement.contract,
        "customer": statement.contract.customer,
        "period": statement.period,
        "zone": statement.period.time_zone,
        "excluded_kinds": {"maintenance": "Maintenance window", "customer": "Caused by the customer"},
    }


def render_statement_pdf(statement: availability.Statement) -> bytes:
    """The statement as a PDF, figures in the customer's locale."""
    with formatting.override(statement.contract.customer.locale):
        html = render_to_string("billing/availability/statement_pdf.html", statement_context(statement))
    return html_to_pdf(html, archival=False)


@login_required
def availability_statement(request: HttpRequest, pk: str) -> HttpResponse:
    require_capability(request, Capability.VIEW_CONTRACTS)
    contract = get_object_or_404(selectors.contracts_visible_to(_user(request)), pk=pk)
    now = timezone.now()
    statement = statement_for(contract, request.GET.get("period"), now=now)
    current = metering.period_containing(now, contract.customer.time_zone)
    periods = [current]
    for _ in range(12):
        periods.append(periods[-1].previous())
    return render(
        request,
        "billing/availability/statement.html",
        {**statement_context(statement), "periods": [p.label for p in periods]},
    )


@login_required
def availability_statement_pdf(request: HttpRequest, pk: str) -> HttpResponse:
    require_capability(request, Capability.VIEW_CONTRACTS)
    contract = get_object_or_404(selectors.contracts_visible_to(_user(request)), pk=pk)
    statement = statement_for(contract, request.GET.get("period"), now=timezone.now())
    response = HttpResponse(render_statement_pdf(statement), content_type="application/pdf")
    name = f"availability-{contract.number}-{statement.period.label}.pdf"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
