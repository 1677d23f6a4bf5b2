"""Marking and removing customer-caused stops from the asset page (fleet/exclusions.py).

Support and operators only (WORK_TICKETS or MANAGE_FLEET); the asset comes through the user's
scoped assets, so another customer's asset is a 404. Times are read in the user's zone.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from fleet import exclusions
from fleet.models import Asset
from portal.models import User
from portal.validation import error_text
from portal.views import require_capability


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


class ExclusionForm(forms.Form):
    starts_at = forms.DateTimeField(input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"])
    ends_at = forms.DateTimeField(input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"])
    reason = forms.CharField(max_length=500)


@login_required
@require_POST
def exclusion_mark_view(request: HttpRequest, pk: str) -> HttpResponse:
    require_capability(request, *exclusions.MARKERS)
    user = _user(request)
    asset = get_object_or_404(Asset.objects.visible_to(user), pk=pk)
    form = ExclusionForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, "; ".join(f"{k}: {' '.join(str(m) for m in v)}" for k, v in form.errors.items())
        )
        return redirect("asset_detail", pk=asset.pk)
    try:
        exclusions.exclusion_mark(actor=user, asset=asset, **form.cleaned_data)
    except ValidationError as exc:
        messages.error(request, error_text(exc))
    else:
        messages.success(request, "Stop marked as caused by the customer.")
    return redirect("asset_detail", pk=asset.pk)


@login_required
@require_POST
def exclusion_remove_view(request: HttpRequest, pk: str) -> HttpResponse:
    require_capability(request, *exclusions.MARKERS)
    user = _user(request)
    exclusion = get_object_or_404(exclusions.exclusions_visible_to(user), pk=pk)
    asset_id = exclusion.asset_id
    exclusions.exclusion_remove(actor=user, exclusion=exclusion)
    messages.success(request, "Mark removed.")
    return redirect("asset_detail", pk=asset_id)
