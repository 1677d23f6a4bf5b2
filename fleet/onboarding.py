"""Fleet's steps of onboarding a customer (portal/onboarding.py has the flow): a site, an asset
at one of the customer's sites, and a device with its first token, shown once.

Every choice a form offers is the customer's own (its sites, its assets) or the catalogue's;
an id from elsewhere, another customer's included, is "Unknown …" on its field, like a missing
one, and nothing is written. The writes are fleet's services (`site_create`, `asset_create`,
`device_install`), audited as from the API.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from fleet import services
from fleet.models import Asset, AssetModel, Device, Site
from portal.forms_onboarding import time_zone_choices
from portal.models import Customer, User
from portal.onboarding import customer_for_step, render_step
from portal.onboarding_steps import Step, register_step, step_context
from portal.roles import Capability
from portal.validation import add_form_errors, is_uuid, validate_day


class SiteOnboardForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200, help_text="As the customer calls it: “Plant Nord”.")
    address = forms.CharField(label="Address", widget=forms.Textarea(attrs={"rows": 3}), required=False)
    time_zone = forms.ChoiceField(label="Time zone", required=False)

    def __init__(self, *args: Any, customer: Customer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        same = ("", f"The customer's ({customer.time_zone})")
        self.fields["time_zone"].choices = time_zone_choices(first=same)  # type: ignore[attr-defined]
        self.fields["time_zone"].help_text = "Only where the site is in another zone than the customer."
        self.customer = customer

    def clean_name(self) -> str:
        name = str(self.cleaned_data["name"]).strip()
        if Site.objects.for_customer(self.customer).filter(name=name).exists():
            raise forms.ValidationError("The customer has a site of this name already.")
        return name


class _ScopedChoiceField(forms.ModelChoiceField[Any]):
    """A choice among the customer's rows by id: a malformed id is unknown like a missing one."""

    def to_python(self, value: Any) -> Any:
        if value not in self.empty_values and not is_uuid(str(value)):
            raise forms.ValidationError(self.error_messages["invalid_choice"], code="invalid_choice")
        return super().to_python(value)


def _choice(queryset: Any, label: str, what: str) -> forms.ModelChoiceField[Any]:
    return _ScopedChoiceField(
        queryset=queryset,
        label=label,
        empty_label=None,
        error_messages={"invalid_choice": f"Unknown {what}."},
    )


class AssetOnboardForm(forms.Form):
    model = forms.ModelChoiceField(queryset=AssetModel.objects.none())
    serial_number = forms.CharField(label="Serial number", max_length=100)
    name = forms.CharField(
        label="Name", max_length=200, help_text="As the customer calls it: “Compressor 1”."
    )
    site = forms.ModelChoiceField(queryset=Site.objects.none())
    commissioned_on = forms.DateField(
        label="Commissioned on",
        required=False,
        validators=[validate_day],
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    def __init__(self, *args: Any, customer: Customer, actor: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"] = _choice(AssetModel.objects.visible_to(actor), "Model", "asset model")
        self.fields["site"] = _choice(Site.objects.for_customer(customer), "Site", "site")
        self.order_fields(["model", "serial_number", "name", "site", "commissioned_on"])
        newest = Site.objects.for_customer(customer).order_by("-created_at").first()
        self.fields["site"].initial = newest.pk if newest else None


class DeviceOnboardForm(forms.Form):
    asset = forms.ModelChoiceField(queryset=Asset.objects.none())
    serial_number = forms.CharField(
        label="Device serial number", max_length=100, help_text="On the connectivity module's label."
    )
    firmware = forms.CharField(label="Firmware", max_length=60, required=False)

    def __init__(self, *args: Any, customer: Customer, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        assets = Asset.objects.for_customer(customer).filter(decommissioned_at__isnull=True)
        self.fields["asset"] = _choice(assets.select_related("site"), "Asset", "asset")
        self.order_fields(["asset", "serial_number", "firmware"])
        # The newest asset without a device: the one just added.
        bare = assets.exclude(devices__is_active=True).order_by("-created_at").first()
        self.fields["asset"].initial = bare.pk if bare else None
        self.fields["asset"].help_text = "A device on an asset that has one replaces it (a swap)."


def _actor(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _blocked(text: str, action: str, url: str) -> dict[str, str]:
    return {"text": text, "action": action, "url": url}


@login_required
@require_http_methods(["GET", "POST"])
def onboard_site(request: HttpRequest, pk: str) -> HttpResponseBase:
    customer = customer_for_step(request, pk, "site")
    form = SiteOnboardForm(request.POST or None, customer=customer)
    if request.method == "POST" and form.is_valid():
        try:
            site = services.site_create(actor=_actor(request), customer=customer, **form.cleaned_data)
        except ValidationError as exc:
            add_form_errors(form, exc)
        else:
            messages.success(request, f"Site {site.name} added.")
            return redirect(step_context(customer, "site")["next_url"])
    return render_step(
        request, customer, "site", form, title="Add a site", submit="Add the site",
        intro="A place where the customer's rented machines run.",
    )  # fmt: skip


@login_required
@require_http_methods(["GET", "POST"])
def onboard_asset(request: HttpRequest, pk: str) -> HttpResponseBase:
    customer = customer_for_step(request, pk, "asset")
    form = AssetOnboardForm(request.POST or None, customer=customer, actor=_actor(request))
    page = {"title": "Add an asset", "submit": "Add the asset", "intro": "A machine the customer rents."}
    if not Site.objects.for_customer(customer).exists():
        url = reverse("onboard_site", args=[customer.pk])
        blocked = _blocked("An asset stands at a site: add the customer's first site.", "Add a site", url)
        return render_step(request, customer, "asset", form, blocked=blocked, **page)
    if request.method == "POST" and form.is_valid():
        try:
            asset = services.asset_create(actor=_actor(request), **form.cleaned_data)
        except ValidationError as exc:
            add_form_errors(form, exc)
        else:
            messages.success(request, f"Asset {asset.name} added.")
            return redirect(step_context(customer, "asset")["next_url"])
    return render_step(request, customer, "asset", form, **page)


@login_required
@require_http_methods(["GET", "POST"])
def onboard_device(request: HttpRequest, pk: str) -> HttpResponseBase:
    customer = customer_for_step(request, pk, "device")
    form = DeviceOnboardForm(request.POST or None, customer=customer)
    page = {
        "title": "Install a device",
        "submit": "Install and issue its token",
        "intro": "The connectivity module that sends the asset's heartbeats. Its token is shown once.",
    }
    if not Asset.objects.for_customer(customer).exists():
        url = reverse("onboard_asset", args=[customer.pk])
        blocked = _blocked("A device sits on an asset: add the customer's first asset.", "Add an asset", url)
        return render_step(request, customer, "device", form, blocked=blocked, **page)
    if request.method == "POST" and form.is_valid():
        try:
            device, token = services.device_install(actor=_actor(request), **form.cleaned_data)
        except ValidationError as exc:
            add_form_errors(form, exc)
        else:
            return _token_page(request, customer, device, token)
    return render_step(request, customer, "device", form, **page)


def _token_page(request: HttpRequest, customer: Customer, device: Device, token: str) -> HttpResponse:
    """The shown-once token page (fleet/device_token.html) inside the flow. Never stored, never
    put in a message or a redirect; not cached."""
    context = {**step_context(customer, "device"), "device": device, "token": token, "what": "installed"}
    response = render(request, "fleet/onboarding_token.html", context)
    response["Cache-Control"] = "no-store"
    return response


def _has_sites(customer: Customer) -> bool:
    return Site.objects.for_customer(customer).exists()


def _has_assets(customer: Customer) -> bool:
    return Asset.objects.for_customer(customer).exists()


def _has_devices(customer: Customer) -> bool:
    return Device.objects.for_customer(customer).filter(is_active=True).exists()


def register_steps() -> None:
    """Called from FleetConfig.ready()."""
    fleet = Capability.MANAGE_FLEET
    register_step(Step("site", "Site", "Add site", "onboard_site", fleet, 20, _has_sites))
    register_step(Step("asset", "Asset", "Add asset", "onboard_asset", fleet, 30, _has_assets))
    register_step(Step("device", "Device", "Add device", "onboard_device", fleet, 40, _has_devices))
