"""HTML pages of the core: home per role, the users of a customer, customers, activity, profile."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from portal import selectors, services
from portal.audit_labels import activity_rows
from portal.customer_overview import customer_panels_for
from portal.forms import ProfileForm, UserInviteForm, UserRoleForm, locale_label
from portal.home import panels_for
from portal.models import User
from portal.onboarding_steps import step_actions
from portal.roles import Capability, Role, can
from portal.validation import error_text

HOME_TEMPLATES = {
    Role.CUSTOMER_VIEWER: "portal/home_customer.html",
    Role.CUSTOMER_ADMIN: "portal/home_customer.html",
    Role.SUPPORT: "portal/home_support.html",
    Role.FINANCE: "portal/home_finance.html",
    Role.OPERATOR: "portal/home_operator.html",
}


def require_capability(request: HttpRequest, *capabilities: Capability) -> None:
    """403 unless the user holds one of `capabilities` (rows are scoped separately: 404)."""
    if not any(can(request.user, c) for c in capabilities):
        raise PermissionDenied


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


_form_errors = error_text


@login_required
def home(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    context: dict[str, Any] = {
        **selectors.home_summary(actor=user),
        "panels": panels_for(user),
        "customer": user.customer,
    }
    context["recent_activity"] = activity_rows(context["recent_activity"], viewer=user)
    return render(request, HOME_TEMPLATES[Role(user.role)], context)


@login_required
def customer_list(request: HttpRequest) -> HttpResponse:
    require_capability(request, Capability.VIEW_ALL_CUSTOMERS)
    customers = selectors.customer_list(actor=_user(request))
    may_onboard = can(request.user, Capability.MANAGE_CUSTOMERS)
    return render(request, "portal/customer_list.html", {"customers": customers, "may_onboard": may_onboard})


@login_required
def customer_detail(request: HttpRequest, pk: str) -> HttpResponse:
    """Staff's overview of one customer: its account and billing identity, and the panels the
    apps register (portal.customer_overview): sites, machines, contracts, invoices, tickets.
    403 for customer users (their own pages show them their data); 404 outside the scope."""
    require_capability(request, Capability.VIEW_ALL_CUSTOMERS)
    actor = _user(request)
    customer = get_object_or_404(selectors.customer_list(actor=actor), pk=pk)
    users = (
        list(selectors.user_list(actor=actor, customer=customer)[:CUSTOMER_USERS])
        if can(actor, Capability.MANAGE_ALL_USERS)
        else None
    )
    return render(
        request,
        "portal/customer_detail.html",
        {
            "customer": customer,
            "users": users,
            "users_limit": CUSTOMER_USERS,
            "identity": customer.billing_identity(),
            "locale_label": locale_label(customer.locale),
            "can_edit_identity": can(actor, Capability.EDIT_BILLING_IDENTITY),
            "panels": customer_panels_for(actor, customer),
            "actions": step_actions(actor, customer) if customer.is_active else [],
        },
    )


CUSTOMER_USERS = 50  # on the overview; the user list has them all


@login_required
def user_list(request: HttpRequest) -> HttpResponse:
    require_capability(request, Capability.MANAGE_CUSTOMER_USERS, Capability.MANAGE_ALL_USERS)
    search = request.GET.get("q", "").strip()
    users = selectors.user_list(actor=_user(request), search=search)
    page = Paginator(users, 50).get_page(request.GET.get("page"))
    return render(request, "portal/user_list.html", {"page": page, "search": search})


@login_required
@require_http_methods(["GET", "POST"])
def user_invite(request: HttpRequest) -> HttpResponse:
    require_capability(request, Capability.MANAGE_CUSTOMER_USERS, Capability.MANAGE_ALL_USERS)
    actor = _user(request)
    form = UserInviteForm(request.POST or None, actor=actor)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_invite(actor=actor, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, _form_errors(exc))
        else:
            if can(actor, Capability.MANAGE_ALL_USERS) and user is not None:
                messages.success(request, f"Invitation sent to {user.email}.")
                return redirect("user_detail", pk=user.pk)
            # A customer admin: the same words whoever owns the address (docs/security.md).
            messages.success(request, services.INVITATION_SENT)
            return redirect("user_list")
    return render(request, "portal/user_invite.html", {"form": form})


@login_required
def user_detail(request: HttpRequest, pk: str) -> HttpResponse:
    require_capability(request, Capability.MANAGE_CUSTOMER_USERS, Capability.MANAGE_ALL_USERS)
    actor = _user(request)
    user = get_object_or_404(User.objects.visible_to(actor).select_related("customer"), pk=pk)
    return render(
        request,
        "portal/user_detail.html",
        {"subject": user, "role_form": UserRoleForm(actor=actor, user=user), "is_self": user.pk == actor.pk},
    )


@login_required
@require_POST
def user_change_role(request: HttpRequest, pk: str) -> HttpResponseBase:
    require_capability(request, Capability.MANAGE_CUSTOMER_USERS, Capability.MANAGE_ALL_USERS)
    actor = _user(request)
    user = get_object_or_404(User.objects.visible_to(actor), pk=pk)
    form = UserRoleForm(request.POST, actor=actor, user=user)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles offered.")
    else:
        try:
            services.user_change_role(actor=actor, user=user, role=form.cleaned_data["role"])
        except ValidationError as exc:
            messages.error(request, _form_errors(exc))
        else:
            messages.success(request, f"{user.email} is now {user.get_role_display()}.")
    return redirect("user_detail", pk=user.pk)


@login_required
@require_POST
def user_set_active(request: HttpRequest, pk: str) -> HttpResponseBase:
    require_capability(request, Capability.MANAGE_CUSTOMER_USERS, Capability.MANAGE_ALL_USERS)
    actor = _user(request)
    user = get_object_or_404(User.objects.visible_to(actor), pk=pk)
    active = request.POST.get("active") == "1"
    try:
        services.user_set_active(actor=actor, user=user, active=active)
    except ValidationError as exc:
        messages.error(request, _form_errors(exc))
    else:
        messages.success(request, f"{user.email} is {'active again' if active else 'deactivated'}.")
    return redirect("user_detail", pk=user.pk)


@login_required
def activity(request: HttpRequest) -> HttpResponse:
    require_capability(request, Capability.VIEW_AUDIT_LOG)
    user = _user(request)
    page = Paginator(selectors.audit_list(actor=user), 50).get_page(request.GET.get("page"))
    rows = activity_rows(page.object_list, viewer=user)
    return render(request, "portal/activity.html", {"page": page, "rows": rows})


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = ProfileForm(request.POST or None, instance=user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Your profile is saved.")
        return redirect("profile")
    # A customer admin sees how their own customer is billed (read-only; finance edits it).
    customer = user.customer if can(user, Capability.VIEW_INVOICES) else None
    identity = customer.billing_identity() if customer is not None else None
    return render(request, "portal/profile.html", {"form": form, "identity": identity})


def error_403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "You do not have permission to perform this action."}, status=403)
    return render(request, "403.html", status=403)


def error_404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return render(request, "404.html", status=404)


def error_500(request: HttpRequest) -> HttpResponse:
    # No context processors that touch the database: the database may be why we are here.
    from django.template import loader

    return HttpResponse(loader.get_template("500.html").render({}), status=500)
