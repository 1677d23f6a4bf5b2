"""Onboarding a customer in the portal, never the Django admin (docs/operations.md,
"Onboarding a customer"): customer → site → asset → device with its first token → the
customer's admin invited.

The core owns the first and the last step and the step indicator; fleet registers its steps
(`portal.onboarding_steps`), so `portal` never imports it. Each step is its own page
with the customer in its path, so the customer overview can resume any of them ("Add site",
"Add device"); each writes through the existing services (audited, e-mails through the
outbox) and is gated by the capability of what it creates: 403 for a role without it, 404 for
a customer outside the actor's scope.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from portal import services
from portal.forms_onboarding import AdminInviteForm, CustomerOnboardForm
from portal.models import Customer, User
from portal.onboarding_steps import step, step_context
from portal.roles import Capability, Role
from portal.validation import add_form_errors
from portal.views import require_capability


def customer_for_step(request: HttpRequest, pk: Any, key: str) -> Customer:
    """The step's capability (403), then the customer through the actor's scope (404)."""
    require_capability(request, step(key).capability)
    return get_object_or_404(Customer.objects.visible_to(request.user).filter(is_active=True), pk=pk)


def render_step(
    request: HttpRequest, customer: Customer | None, key: str, form: Any, **context: Any
) -> HttpResponse:
    """A step's page: the indicator, the form with its errors next to the fields (400 when the
    POST was refused, so nothing changed)."""
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "portal/onboarding/step.html",
        {**step_context(customer, key), "form": form, **context},
        status=status,
    )


def _actor(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _default_time_zone(actor: User) -> str:
    """The operator's own zone: a provider onboards mostly in its own market."""
    return actor.time_zone or timezone.get_current_timezone_name()


@login_required
@require_http_methods(["GET", "POST"])
def onboard_customer(request: HttpRequest) -> HttpResponseBase:
    require_capability(request, Capability.MANAGE_CUSTOMERS)
    actor = _actor(request)
    form = CustomerOnboardForm(request.POST or None, default_time_zone=_default_time_zone(actor))
    if request.method == "POST" and form.is_valid():
        values = form.values()
        try:
            customer = services.customer_create(actor=actor, **values)
        except ValidationError as exc:
            add_form_errors(form, exc)
        else:
            messages.success(request, f"{customer.name} is a customer now. Next: its first site.")
            return redirect(step_context(customer, "customer")["next_url"] or customer_url(customer))
    return render_step(
        request,
        None,
        "customer",
        form,
        title="Onboard a customer",
        intro="Its account and how its invoices name, address and tax it.",
        submit="Create the customer",
        cancel_url=reverse("customer_list"),
    )


def customer_url(customer: Customer) -> str:
    return reverse("customer_detail", args=[customer.pk])


@login_required
@require_http_methods(["GET", "POST"])
def onboard_invite(request: HttpRequest, pk: str) -> HttpResponseBase:
    customer = customer_for_step(request, pk, "invite")
    actor = _actor(request)
    form = AdminInviteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.user_invite(
                actor=actor, role=Role.CUSTOMER_ADMIN, customer=customer, **form.cleaned_data
            )
        except ValidationError as exc:
            add_form_errors(form, exc)
        else:
            messages.success(
                request, f"Invitation sent to {form.cleaned_data['email']}: they set their password from it."
            )
            return redirect(customer_url(customer))
    return render_step(
        request,
        customer,
        "invite",
        form,
        title="Invite the customer's admin",
        intro=(
            f"{customer.name}'s first admin gets an e-mail with a link to set their password; "
            "they invite their colleagues themselves."
        ),
        submit="Send the invitation",
    )
