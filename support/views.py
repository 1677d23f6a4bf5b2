"""Support pages: the agent queue, the ticket page, the customer's tickets and form, disputes,
and the SLA report."""

from __future__ import annotations

import copy
from collections import defaultdict
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from billing.selectors import invoices_visible_to
from fleet.models import ACTIVE_ALARM_STATES, Alarm, Asset, MaintenanceWindow, WindowStatus
from portal import formatting
from portal.filters import chosen, page_filters
from portal.models import Customer, User
from portal.roles import Capability, can
from portal.tenancy import customer_id_scope, scoped_get_or_none
from portal.validation import error_text
from support import access, selectors, services, wording
from support.models import TRANSITIONS, Category, Priority, SlaState, Status, Ticket


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _require_tickets(request: HttpRequest) -> User:
    user = _user(request)
    if not access.may_view_tickets(user):
        raise PermissionDenied
    return user


@login_required
def ticket_list(request: HttpRequest) -> HttpResponse:
    user = _require_tickets(request)
    partial = bool(request.GET.get("partial"))
    filters = page_filters(
        request,
        selectors.TicketFilter,
        selectors.ticket_list(actor=user),
        defaults={"status": "unresolved"},
        report=not partial,
    )
    page = Paginator(filters.qs, 50).get_page(request.GET.get("page"))
    staff = user.customer_id is None
    context = {
        "page": page,
        "filters": chosen(filters),
        "staff": staff,
        "statuses": Status.choices,
        "priorities": Priority.values,
        "sla_states": [s for s in SlaState.choices if s[0]],
        "customers": Customer.objects.visible_to(user).order_by("name") if staff else [],
        "agents": selectors.agent_list() if staff else [],
        "can_open": can(user, Capability.OPEN_TICKETS),
    }
    template = "support/_ticket_rows.html" if partial else "support/ticket_list.html"
    return render(request, template, context)


@login_required
def ticket_new(request: HttpRequest) -> HttpResponseBase:
    user = _require_tickets(request)
    if not can(user, Capability.OPEN_TICKETS):
        raise PermissionDenied
    scope = customer_id_scope(user)
    assets = Asset.objects.visible_to(user).select_related("customer").order_by("customer__name", "name")
    values: dict[str, Any] = {
        "priority": "P3",
        "category": "breakdown",
        "asset": request.GET.get("asset", ""),
    }
    error = ""
    if request.method == "POST":
        values = request.POST.dict()
        customer_id = str(values.get("customer", "")) if scope is None else str(scope)
        asset = scoped_get_or_none(assets, values.get("asset"))
        if scope is None and asset is not None:
            customer_id = str(asset.customer_id)
        customer = scoped_get_or_none(Customer.objects.visible_to(user), customer_id)
        try:
            if customer is None:
                raise ValidationError({"customer": "Choose the customer (or one of its assets)."})
            ticket = services.ticket_open(
                actor=user,
                customer=customer,
                subject=values.get("subject", ""),
                description=values.get("description", ""),
                category=values.get("category", Category.QUESTION),
                priority=values.get("priority", Priority.P3),
                asset=asset,
            )
        except ValidationError as exc:
            error = error_text(exc)
        else:
            due = formatting.when(ticket.first_response_due)  # in the user's zone, as the page shows it
            messages.success(request, f"Ticket {ticket.number} opened. We reply by {due} at the latest.")
            return redirect("ticket_detail", pk=ticket.pk)
    return render(
        request,
        "support/ticket_new.html",
        {
            "values": values,
            "error": error,
            "assets": assets,
            "customers": Customer.objects.visible_to(user).order_by("name") if scope is None else [],
            "categories": [c for c in Category.choices if c[0] != Category.BILLING or scope is None],
            "priorities": Priority.choices,
        },
    )


def _ticket_context(user: User, ticket: Ticket) -> dict[str, Any]:
    events = (
        ticket.events.select_related("author").prefetch_related("attachments").order_by("created_at", "id")
    )
    if not access.may_see_internal(user):
        events = events.filter(internal=False)
    return {
        "ticket": ticket,
        "events": events,
        "may_work": access.may_work(user, ticket),
        "may_comment": access.may_comment(user, ticket) and ticket.status != Status.CLOSED,
        "may_internal": access.may_write_internal(user, ticket),
        "transitions": _transitions(user, ticket, ticket.status),
        "terms": wording.terms(ticket),
        "terms_source": wording.terms_source(ticket),
    }


def _transitions(user: User, ticket: Ticket, status: str) -> list[tuple[str, str]]:
    """The status buttons `user` gets on `ticket` once it is in `status` (value, action name)."""
    there = copy.copy(ticket)
    there.status = status
    return [
        (to, wording.action_label(status, to))
        for to in sorted(TRANSITIONS[status])
        if access.may_transition(user, there, to)
    ]


@login_required
def ticket_detail(request: HttpRequest, pk: str) -> HttpResponse:
    user = _require_tickets(request)
    ticket = get_object_or_404(
        access.tickets_visible_to(user).select_related(
            "customer", "asset", "contract", "invoice", "assignee"
        ),
        pk=pk,
    )
    context = _ticket_context(user, ticket)
    if request.GET.get("partial") == "timeline":
        return render(request, "support/_timeline.html", context)
    alarms: list[Alarm] = []
    if ticket.asset_id is not None and can(user, Capability.VIEW_FLEET):
        alarms = list(Alarm.objects.filter(asset_id=ticket.asset_id).order_by("-raised_at")[:5])
    gauges = []
    if ticket.asset is not None and can(user, Capability.VIEW_FLEET):
        gauges = [
            {"code": m.code, "label": m.label, "unit": m.unit}
            for m in ticket.asset.model.metrics.filter(kind="gauge").order_by("code")[:2]
        ]
    sla_terms = None
    if ticket.contract is not None:
        sla_terms = [
            (p, ticket.contract.first_response_minutes.get(p), ticket.contract.resolution_minutes.get(p))
            for p in Priority.values
        ]
    context.update(
        {
            "alarms": alarms,
            "active_alarm_states": ACTIVE_ALARM_STATES,
            "sla_terms": sla_terms,
            "agents": selectors.agent_list() if can(user, Capability.WORK_TICKETS) else [],
            "priorities": Priority.values,
            "can_credit": ticket.invoice_id is not None and can(user, Capability.RUN_INVOICES),
            "can_see_invoice": ticket.invoice_id is not None and can(user, Capability.VIEW_INVOICES),
            "show_fleet": ticket.asset_id is not None and can(user, Capability.VIEW_FLEET),
            # A proactive ticket's window: staff see a proposal; the customer once it is planned.
            "window": _ticket_window(ticket, user),
            "ticket_spec": {
                "ticket": str(ticket.pk),
                "asset": str(ticket.asset_id or ""),
                "gauges": gauges,
                # The buttons for each status the ticket may reach, so a live change redraws them.
                "actions": {s: _transitions(user, ticket, s) for s in Status.values},
            },
        }
    )
    return render(request, "support/ticket_detail.html", context)


def _ticket_window(ticket: Ticket, user: User) -> MaintenanceWindow | None:
    window = ticket.maintenance_window
    if window is None or not can(user, Capability.VIEW_FLEET):
        return None
    if window.status == WindowStatus.PROPOSED and not can(user, Capability.WORK_TICKETS):
        return None
    return window


TICKET_ACTIONS = ("comment", "transition", "assign", "priority", "attach", "credit")


@login_required
@require_POST
def ticket_action(request: HttpRequest, pk: str, action: str) -> HttpResponseBase:
    user = _require_tickets(request)
    ticket = get_object_or_404(access.tickets_visible_to(user), pk=pk)
    if action not in TICKET_ACTIONS:
        raise Http404
    post = request.POST
    try:
        if action == "comment":
            internal = post.get("internal") == "1"
            event = services.ticket_comment(
                actor=user, ticket=ticket, body=post.get("body", ""), internal=internal
            )
            for upload in request.FILES.getlist("file"):
                services.attachment_add(actor=user, ticket=ticket, upload=upload, event=event)
            messages.success(request, "Internal note added." if internal else "Reply sent.")
        elif action == "transition":
            services.ticket_transition(actor=user, ticket=ticket, to=post.get("status", ""))
        elif action == "assign":
            agent = scoped_get_or_none(selectors.assignable_users(), post.get("assignee"))
            services.ticket_assign(actor=user, ticket=ticket, assignee=agent)
        elif action == "priority":
            services.ticket_set_priority(actor=user, ticket=ticket, priority=post.get("priority", ""))
        elif action == "attach":
            chosen = request.FILES.get("file")
            if chosen is None:
                raise ValidationError({"file": "Choose a file."})
            services.attachment_add(actor=user, ticket=ticket, upload=chosen)
        else:
            try:
                amount = Decimal(post.get("amount", "").strip().replace(",", "."))
            except InvalidOperation:
                raise ValidationError({"amount": "Give the amount as a number, e.g. 25.00."}) from None
            if not amount.is_finite():
                raise ValidationError({"amount": "Give the amount as a number, e.g. 25.00."})
            services.dispute_credit(actor=user, ticket=ticket, amount=amount, reason=post.get("reason", ""))
            messages.success(request, "Credit note issued and the dispute resolved.")
    except ValidationError as exc:
        messages.error(request, error_text(exc))
    return redirect("ticket_detail", pk=ticket.pk)


@login_required
def dispute_new(request: HttpRequest, invoice_pk: str) -> HttpResponseBase:
    user = _user(request)
    if not can(user, Capability.DISPUTE_INVOICES):
        raise PermissionDenied
    invoice = get_object_or_404(invoices_visible_to(user), pk=invoice_pk)
    lines = list(invoice.lines.order_by("position"))
    error = ""
    # One open dispute per invoice: the page says so and links to it instead of a second form.
    existing = services.open_dispute_of(invoice)
    if request.method == "POST" and existing is None:
        line = next((x for x in lines if str(x.pk) == request.POST.get("line")), None)
        try:
            ticket = services.dispute_open(
                actor=user, invoice=invoice, reason=request.POST.get("reason", ""), line=line
            )
        except services.DisputeExistsError as exc:
            existing = exc.ticket
        except ValidationError as exc:
            error = error_text(exc)
        else:
            messages.success(request, f"Dispute {ticket.number} opened. Finance will answer here.")
            return redirect("ticket_detail", pk=ticket.pk)
    return render(
        request,
        "support/dispute_new.html",
        {
            "invoice": invoice,
            "lines": lines,
            "error": error,
            "selected": request.GET.get("line", ""),
            "existing": existing,
        },
    )


@login_required
def sla_report(request: HttpRequest) -> HttpResponse:
    """Per customer and month: tickets opened, first responses in time, breached and awaited,
    resolutions."""
    user = _user(request)
    if not (can(user, Capability.WORK_TICKETS) or can(user, Capability.VIEW_TICKETS)):
        raise PermissionDenied
    table = selectors.sla_report_rows(actor=user, now=timezone.now())
    chart: dict[str, dict[str, float | None]] = defaultdict(dict)
    for row in table:
        chart[row["customer__name"]][row["month"].strftime("%Y-%m")] = row["first_in_time_pct"]
    return render(
        request,
        "support/sla_report.html",
        {"rows": table, "chart": chart, "has_data": bool(table)},
    )
