"""Pages of maintenance windows: the calendar list everyone who sees the fleet reads (grouped
by day in the reader's zone), a window's page, and the forms support plans, moves, cancels,
confirms and closes windows with."""

from __future__ import annotations

from itertools import groupby
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from fleet import window_mail, windows
from fleet.models import Asset, MaintenanceWindow, Recurrence, Site, WindowStatus
from portal.models import Customer, User
from portal.roles import Capability
from portal.tenancy import scoped_get_or_none
from portal.views import require_capability

LOCAL = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _plans(request: HttpRequest) -> User:
    require_capability(request, Capability.WORK_TICKETS)
    return _user(request)


class WindowForm(forms.Form):
    """A new window for one customer; times in the planner's own zone (the active one)."""

    title = forms.CharField(max_length=120)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    emergency = forms.BooleanField(
        required=False, label="Emergency: starts now", help_text="The start time is ignored."
    )
    starts_at = forms.DateTimeField(label="Starts", widget=LOCAL, required=False)
    ends_at = forms.DateTimeField(label="Ends", widget=LOCAL)
    site = forms.ModelChoiceField(
        Site.objects.none(), required=False, empty_label="Every site", help_text="Leave assets empty for all."
    )
    assets = forms.ModelMultipleChoiceField(
        Asset.objects.none(), required=False, help_text="None chosen: every asset of the site (or customer)."
    )
    recurrence = forms.ChoiceField(choices=Recurrence.choices, required=False, label="Repeats")
    recurs_until = forms.DateField(
        required=False, label="Repeats until", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, customer: Customer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        site_field = self.fields["site"]
        asset_field = self.fields["assets"]
        assert isinstance(site_field, forms.ModelChoiceField)
        assert isinstance(asset_field, forms.ModelMultipleChoiceField)
        site_field.queryset = Site.objects.for_customer(customer).order_by("name")
        asset_field.queryset = Asset.objects.for_customer(customer).select_related("site").order_by("name")
        asset_field.widget.attrs["size"] = "6"


class MoveForm(forms.Form):
    title = forms.CharField(max_length=120)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    starts_at = forms.DateTimeField(label="Starts", widget=LOCAL)
    ends_at = forms.DateTimeField(label="Ends", widget=LOCAL)


def _errors_to(form: forms.Form, exc: ValidationError) -> None:
    """The service's field errors next to the form's fields (others above the form)."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, messages_ in exc.message_dict.items():
        form.add_error(field if field in form.fields else None, messages_)


@login_required
def maintenance_calendar(request: HttpRequest) -> HttpResponse:
    require_capability(request, Capability.VIEW_FLEET)
    actor = _user(request)
    now = timezone.now()
    spans = windows.upcoming(windows.window_list(actor=actor), now=now)
    days = [
        (day, list(group))
        for day, group in groupby(spans, key=lambda o: timezone.localtime(o.starts_at).date())
    ]
    return render(
        request,
        "fleet/windows/calendar.html",
        {
            "days": days,
            "now": now,
            "may_plan": windows.may_plan(actor),
            "zone": timezone.get_current_timezone_name(),
        },
    )


@login_required
def window_new(request: HttpRequest) -> HttpResponseBase:
    actor = _plans(request)
    customers = Customer.objects.visible_to(actor).order_by("name")
    asset = scoped_get_or_none(Asset.objects.visible_to(actor), request.GET.get("asset"))
    customer = scoped_get_or_none(customers, request.POST.get("customer") or request.GET.get("customer"))
    if asset is not None:
        customer = asset.customer
    if customer is None:
        return render(request, "fleet/windows/pick_customer.html", {"customers": customers})
    initial: dict[str, Any] = {"assets": [asset.pk]} if asset is not None else {}
    form = WindowForm(request.POST or None, customer=customer, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            if data["emergency"]:
                window = windows.window_open_emergency(
                    actor=actor, customer=customer, title=data["title"], reason=data["reason"],
                    ends_at=data["ends_at"], site=data["site"], assets=data["assets"],
                )  # fmt: skip
            else:
                window = windows.window_plan(
                    actor=actor, customer=customer, title=data["title"], reason=data["reason"],
                    starts_at=data["starts_at"], ends_at=data["ends_at"], site=data["site"],
                    assets=data["assets"], recurrence=data["recurrence"] or "",
                    recurs_until=data["recurs_until"],
                )  # fmt: skip
        except ValidationError as exc:
            _errors_to(form, exc)
        else:
            messages.success(
                request, f"Maintenance window “{window.title}” planned; {customer.name} is told."
            )
            return redirect("maintenance_window", pk=window.pk)
    context = {"form": form, "customer": customer, "zone": timezone.get_current_timezone_name()}
    return render(request, "fleet/windows/new.html", context)


def _window(request: HttpRequest, pk: str) -> MaintenanceWindow:
    return get_object_or_404(windows.window_list(actor=_user(request)), pk=pk)


@login_required
def window_detail(request: HttpRequest, pk: str) -> HttpResponse:
    require_capability(request, Capability.VIEW_FLEET)
    window = _window(request, pk)
    actor = _user(request)
    may_plan = windows.may_plan(actor)
    move = None
    if may_plan and window.status != WindowStatus.CANCELLED:
        move = MoveForm(
            initial={
                "title": window.title,
                "reason": window.reason,
                "starts_at": timezone.localtime(window.starts_at),
                "ends_at": timezone.localtime(window.ends_at),
            }
        )
    return render(request, "fleet/windows/detail.html", _detail_context(window, may_plan, move))


def _detail_context(window: MaintenanceWindow, may_plan: bool, move: MoveForm | None) -> dict[str, Any]:
    now = timezone.now()
    spans = windows.upcoming(
        MaintenanceWindow.objects.filter(pk=window.pk).select_related("customer"), now=now
    )
    return {
        "window": window,
        "may_plan": may_plan,
        "move": move,
        "spans": spans[:10],
        "running": any(o.current for o in spans) and window.status == WindowStatus.PLANNED,
        "scope": window_mail.scope_label(window),
    }


@login_required
@require_POST
def window_move(request: HttpRequest, pk: str) -> HttpResponseBase:
    actor = _plans(request)
    window = _window(request, pk)
    form = MoveForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            windows.window_move(
                actor=actor, window=window, starts_at=data["starts_at"], ends_at=data["ends_at"],
                title=data["title"], reason=data["reason"],
            )  # fmt: skip
        except ValidationError as exc:
            _errors_to(form, exc)
        else:
            messages.success(request, "Window moved.")
            return redirect("maintenance_window", pk=window.pk)
    return render(request, "fleet/windows/detail.html", _detail_context(window, True, form), status=400)


ACTIONS = {
    "cancel": (windows.window_cancel, "Window cancelled."),
    "confirm": (windows.window_confirm, "Window planned; the customer is told."),
    "close": (windows.window_close_early, "Window closed."),
}


@login_required
@require_POST
def window_action(request: HttpRequest, pk: str, action: str) -> HttpResponseBase:
    actor = _plans(request)
    window = _window(request, pk)
    if action not in ACTIONS:
        raise Http404
    service, done = ACTIONS[action]
    try:
        service(actor=actor, window=window)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, done)
    return redirect("maintenance_window", pk=window.pk)
