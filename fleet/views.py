from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from fleet import selectors
from fleet.models import AssetStatus
from fleet.selectors import site_list as select_sites
from portal.roles import Capability
from portal.views import require_capability


@login_required
def site_list(request: HttpRequest) -> HttpResponse:
    require_capability(request, Capability.VIEW_FLEET)
    search = request.GET.get("q", "").strip()
    page = Paginator(select_sites(actor=request.user, search=search), 50).get_page(request.GET.get("page"))  # type: ignore[arg-type]
    return render(request, "fleet/site_list.html", {"page": page, "search": search})


@login_required
def site_detail(request: HttpRequest, pk: str) -> HttpResponse:
    require_capability(request, Capability.VIEW_FLEET)
    site = get_object_or_404(select_sites(actor=request.user), pk=pk)  # type: ignore[arg-type]
    return render(request, "fleet/site_detail.html", {"site": site})


@login_required
def fleet_overview(request: HttpRequest) -> HttpResponse:
    require_capability(request, Capability.VIEW_FLEET)
    params = request.GET
    status = params.get("status") or None
    if status not in (None, *AssetStatus.values):
        status = None
    site = params.get("site") or None
    if site and not selectors._is_uuid(site):
        site = None
    context = selectors.fleet_overview(
        actor=request.user,  # type: ignore[arg-type]
        site=site,
        status=status,
        model=params.get("model") or None,
        search=params.get("q", "").strip(),
    )
    context["filters"] = {
        "site": site or "",
        "status": status or "",
        "model": params.get("model", ""),
        "q": params.get("q", ""),
    }
    return render(request, "fleet/overview.html", context)
