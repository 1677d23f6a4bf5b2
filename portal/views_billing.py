"""The billing identity page: operators and finance keep what invoices print for a customer."""

from __future__ import annotations

import copy

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from portal import selectors, services
from portal.forms_billing import BillingIdentityForm
from portal.models import User
from portal.roles import Capability
from portal.validation import add_form_errors
from portal.views import require_capability


@login_required
@require_http_methods(["GET", "POST"])
def customer_billing(request: HttpRequest, pk: str) -> HttpResponseBase:
    """403 for a role that may not edit identities (customer users, support); 404 for a
    customer outside the user's scope. Nothing is saved unless every field is valid."""
    require_capability(request, Capability.EDIT_BILLING_IDENTITY)
    actor = request.user
    assert isinstance(actor, User)
    customer = get_object_or_404(selectors.customer_list(actor=actor), pk=pk)
    # The form validates on a copy: `customer` stays as stored for the service to compare with.
    form = BillingIdentityForm(request.POST or None, instance=copy.copy(customer))
    if request.method == "POST" and form.is_valid():
        try:
            services.customer_update(actor=actor, customer=customer, **form.changes())
        except ValidationError as exc:
            add_form_errors(form, exc)
        else:
            messages.success(request, f"{customer.name}'s billing identity is saved.")
            return redirect("customer_detail", pk=customer.pk)
    return render(request, "portal/customer_billing.html", {"customer": customer, "form": form})
