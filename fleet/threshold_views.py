"""The page side of thresholds the customer owns (fleet/thresholds.py): one rule of one asset,
its model's threshold and the asset's own, with a form for those who may tune it. The asset
page shows every rule in a panel (fleet/templates/fleet/panels/_thresholds.html) whose forms
post here; a refused value comes back on this page with the error next to the field."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render

from fleet import thresholds
from fleet.models import AlarmRule, Asset
from portal.roles import Capability, can
from portal.views import _user, require_capability


class ThresholdForm(forms.Form):
    threshold = forms.DecimalField(
        label="The asset's own threshold",
        max_digits=thresholds.MAX_DIGITS,
        decimal_places=thresholds.DECIMAL_PLACES,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )


@login_required
def threshold_edit(request: HttpRequest, pk: str, rule_pk: str) -> HttpResponseBase:
    """GET: the rule as it applies to the asset. POST: set (`threshold`) or clear (`clear`)."""
    require_capability(request, Capability.VIEW_FLEET)
    actor = _user(request)
    asset = get_object_or_404(Asset.objects.visible_to(actor).select_related("site", "model"), pk=pk)
    try:
        rule = thresholds.threshold_rule_get(asset=asset, rule_id=rule_pk)
    except AlarmRule.DoesNotExist as exc:
        raise Http404 from exc
    may_tune = can(actor, Capability.TUNE_THRESHOLDS)
    form = ThresholdForm()
    if request.method == "POST":
        require_capability(request, Capability.TUNE_THRESHOLDS)
        if "clear" in request.POST:
            if thresholds.threshold_clear(asset=asset, rule=rule, actor=actor):
                messages.success(request, f"{rule.name}: back to the model's threshold.")
            return redirect("asset_detail", pk=asset.pk)
        form = ThresholdForm(request.POST)
        if form.is_valid():
            try:
                thresholds.threshold_set(
                    asset=asset, rule=rule, threshold=form.cleaned_data["threshold"], actor=actor
                )
            except thresholds.ThresholdError as exc:
                form.add_error("threshold", str(exc))
            else:
                messages.success(request, f"{rule.name}: the asset's own threshold is set.")
                return redirect("asset_detail", pk=asset.pk)
    elif request.method != "GET":
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    (row,) = thresholds.threshold_rows(asset=asset, rule_id=rule.pk)
    if not form.is_bound and row.customer_threshold is not None:
        form = ThresholdForm(initial={"threshold": format(row.customer_threshold.normalize(), "f")})
    return render(
        request,
        "fleet/threshold_edit.html",
        {"asset": asset, "row": row, "form": form, "may_tune": may_tune},
        status=400 if form.errors else 200,
    )
