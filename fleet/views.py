from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from fleet import alarms, credentials, selectors, services
from fleet.chart_range import chart_range
from fleet.models import (
    ACTIVE_ALARM_STATES,
    Alarm,
    AlarmState,
    Asset,
    AssetStatusChange,
    Device,
    ImplausibleReading,
    Severity,
)
from fleet.selectors import site_list as select_sites
from portal.filters import chosen, page_filters
from portal.models import Customer, User
from portal.roles import Capability, can
from portal.views import require_capability


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


@login_required
def site_list(request: HttpRequest) -> HttpResponse:
    require_capability(request, Capability.VIEW_FLEET)
    search = request.GET.get("q", "").strip()
    page = Paginator(select_sites(actor=request.user, search=search), 50).get_page(request.GET.get("page"))  # type: ignore[arg-type]
    return render(request, "fleet/site_list.html", {"page": page, "search": search})


@login_required
def site_detail(request: HttpRequest, pk: str) -> HttpResponse:
    require_capability(request, Capability.VIEW_FLEET)
    actor = _user(request)
    site = get_object_or_404(select_sites(actor=actor), pk=pk)
    # Through the actor's scope like every list (never "the site's assets" by the site alone).
    assets = selectors.asset_list(actor=actor).filter(site=site).order_by("name", "pk")
    return render(request, "fleet/site_detail.html", {"site": site, "assets": assets})


@login_required
def fleet_overview(request: HttpRequest) -> HttpResponse:
    require_capability(request, Capability.VIEW_FLEET)
    actor = _user(request)
    filters = page_filters(request, selectors.AssetFilter, selectors.asset_list(actor=actor))
    context = selectors.fleet_overview(actor=actor, assets=filters.qs, page=request.GET.get("page"))
    context["filters"] = chosen(filters)
    context["staff"] = actor.customer_id is None  # the table's customer column
    # The pages' links keep the filters and the order: the query string less its page.
    query = request.GET.copy()
    query.pop("page", None)
    context["page_query"] = f"{query.urlencode()}&" if query else ""
    return render(request, "fleet/overview.html", context)


@login_required
def asset_detail(request: HttpRequest, pk: str) -> HttpResponse:
    require_capability(request, Capability.VIEW_FLEET)
    actor = request.user
    asset = get_object_or_404(
        Asset.objects.visible_to(actor).select_related("site", "model", "customer"),
        pk=pk,
    )
    metrics = list(asset.model.metrics.order_by("kind", "code"))
    range_form, custom_range = chart_range(request.GET)
    alarms = (
        Alarm.objects.for_customer(asset.customer_id)
        .filter(asset=asset)
        .select_related("acknowledged_by", "cleared_by")
    )
    context = {
        "asset": asset,
        "gauges": [m for m in metrics if m.kind == "gauge"],
        "counters": [m for m in metrics if m.kind == "counter"],
        "metrics": metrics,
        "active_alarms": alarms.filter(state__in=ACTIVE_ALARM_STATES).order_by("-raised_at"),
        "past_alarms": alarms.filter(state=AlarmState.CLEARED).order_by("-raised_at")[:10],
        "history": AssetStatusChange.objects.for_customer(asset.customer_id)
        .filter(asset=asset)
        .order_by("-at")[:15],
        "devices": Device.objects.for_customer(asset.customer_id)
        .filter(asset=asset)
        .prefetch_related("credentials")
        .order_by("-installed_at"),
        "can_acknowledge": can(actor, Capability.ACKNOWLEDGE_ALARMS),
        "can_manage": can(actor, Capability.MANAGE_FLEET),
        "flagged_readings": ImplausibleReading.objects.for_customer(asset.customer_id)
        .filter(asset=asset)
        .select_related("decided_by")
        .order_by("-ts")[:20],
        "can_decide_readings": can(actor, Capability.WORK_TICKETS),
        "metric_spec": [
            {
                "code": m.code,
                "label": m.label,
                "unit": m.unit,
                "kind": m.kind,
                "min": float(m.normal_min) if m.normal_min is not None else None,
                "max": float(m.normal_max) if m.normal_max is not None else None,
            }
            for m in metrics
        ],
        "range_form": range_form,
        "chart_range": None if custom_range is None else {k: v.isoformat() for k, v in custom_range.items()},
    }
    # A custom range the form refused: the page with the error next to the field, as a 400.
    return render(request, "fleet/asset_detail.html", context, status=400 if range_form.errors else 200)


@login_required
@require_POST
def alarm_action(request: HttpRequest, pk: str, action: str) -> HttpResponseBase:
    require_capability(request, Capability.ACKNOWLEDGE_ALARMS)
    if action not in ("acknowledge", "clear"):
        raise Http404
    actor = request.user
    alarm = get_object_or_404(Alarm.objects.visible_to(actor), pk=pk)
    try:
        if action == "acknowledge":
            alarms.alarm_acknowledge(alarm=alarm, actor=actor)  # type: ignore[arg-type]
            messages.success(request, "Alarm acknowledged.")
        else:
            alarms.alarm_clear(alarm=alarm, actor=actor)  # type: ignore[arg-type]
            messages.success(request, "Alarm cleared.")
    except alarms.AlarmStateError as exc:
        messages.error(request, str(exc))
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("asset_detail", args=[alarm.asset_id])
    return redirect(target)


@login_required
@require_POST
def reading_decide(request: HttpRequest, pk: str, action: str) -> HttpResponseBase:
    """Accept or reject a flagged counter reading (docs/billing.md, "Implausible counter readings")."""
    require_capability(request, Capability.WORK_TICKETS)
    if action not in ("accept", "reject"):
        raise Http404
    actor = _user(request)
    reading = get_object_or_404(ImplausibleReading.objects.visible_to(actor), pk=pk)
    try:
        services.implausible_reading_decide(reading=reading, accept=action == "accept", actor=actor)
        messages.success(
            request, "Reading accepted: its usage is billed." if action == "accept" else "Reading rejected."
        )
    except services.ReadingDecisionError as exc:
        messages.error(request, str(exc))
    return redirect(reverse("asset_detail", args=[reading.asset_id]))


@login_required
def alarm_centre(request: HttpRequest) -> HttpResponse:
    """Active alarms across the customers the user may see, for the people who act on them."""
    require_capability(request, Capability.VIEW_FLEET)
    actor = _user(request)
    filters = page_filters(
        request, selectors.AlarmFilter, selectors.alarm_list(actor=actor), defaults={"state": "active"}
    )
    page = Paginator(filters.qs, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "fleet/alarm_centre.html",
        {
            "page": page,
            "filters": chosen(filters),
            "severities": Severity.choices,
            "customers": Customer.objects.visible_to(request.user).filter(is_active=True),
            "can_acknowledge": can(request.user, Capability.ACKNOWLEDGE_ALARMS),
        },
    )


def _token_page(request: HttpRequest, device: Device, token: str, what: str) -> HttpResponse:
    """Show a device token once. Never stored, never put in a message or a redirect."""
    response = render(request, "fleet/device_token.html", {"device": device, "token": token, "what": what})
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def device_install(request: HttpRequest, pk: str) -> HttpResponse:
    require_capability(request, Capability.MANAGE_FLEET)
    asset = get_object_or_404(Asset.objects.visible_to(request.user), pk=pk)
    serial = request.POST.get("serial_number", "").strip()
    try:
        device, token = services.device_install(
            actor=request.user,  # type: ignore[arg-type]
            asset=asset,
            serial_number=serial,
            firmware=request.POST.get("firmware", "").strip()[:60],
        )
    except ValidationError as exc:
        messages.error(request, " ".join(m for msgs in exc.message_dict.values() for m in msgs))
        return redirect("asset_detail", pk=asset.pk)
    return _token_page(request, device, token, "installed")


@login_required
@require_POST
def device_rotate(request: HttpRequest, pk: str) -> HttpResponse:
    require_capability(request, Capability.MANAGE_FLEET)
    device = get_object_or_404(Device.objects.visible_to(request.user).select_related("asset"), pk=pk)
    try:
        overlap = timedelta(seconds=max(0, min(int(request.POST.get("overlap_seconds", "3600")), 7 * 86400)))
    except ValueError:
        overlap = timedelta(hours=1)
    token = credentials.device_token_issue(device=device, actor=request.user, overlap=overlap)  # type: ignore[arg-type]
    return _token_page(request, device, token, "rotated")


@login_required
@require_POST
def device_revoke(request: HttpRequest, pk: str) -> HttpResponseBase:
    require_capability(request, Capability.MANAGE_FLEET)
    device = get_object_or_404(Device.objects.visible_to(request.user), pk=pk)
    count = credentials.device_revoke(device=device, actor=request.user)  # type: ignore[arg-type]
    messages.success(
        request,
        f"Revoked {count} token{'s' if count != 1 else ''} of {device}. It is refused within seconds.",
    )
    return redirect("asset_detail", pk=device.asset_id)
