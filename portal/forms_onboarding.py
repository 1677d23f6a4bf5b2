"""The onboarding flow's forms of the core: a new customer and the invitation of its admin.

The customer form is the billing identity page's form (`BillingIdentityForm`: tax as a
percentage, the VAT ID by python-stdnum, the tax category's rules) with the account's fields
before it; the view writes through `portal.services.customer_create`, which validates again
and audits.
"""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Any

from django import forms
from django.utils.text import slugify

from portal.forms_billing import BillingIdentityForm
from portal.models import Customer
from portal.services import FINANCE_FIELDS

# The regions of the IANA database people pick a city in; the rest (CET, US/Pacific, Etc/GMT+1)
# are aliases and legacy names that no new customer needs.
REGIONS = (
    "Africa", "America", "Antarctica", "Arctic", "Asia", "Atlantic", "Australia", "Europe", "Indian",
    "Pacific",
)  # fmt: skip

ChoiceGroup = tuple[str, list[tuple[str, str]]]


@cache
def time_zone_groups() -> tuple[ChoiceGroup, ...]:
    """The zones as <optgroup>s by region, each zone labelled by its city: Europe › Berlin."""
    groups: dict[str, list[tuple[str, str]]] = {region: [] for region in REGIONS}
    for name in sorted(zoneinfo.available_timezones()):
        region, _, city = name.partition("/")
        if region in groups and city:
            groups[region].append((name, city.replace("_", " ")))
    return tuple((region, zones) for region, zones in groups.items() if zones)


def time_zone_choices(first: tuple[str, str] = ("UTC", "UTC")) -> list[Any]:
    return [first, *time_zone_groups()]


def is_offered_zone(name: str) -> bool:
    return any(name == value for _, zones in time_zone_groups() for value, _ in zones)


def unique_slug(name: str) -> str:
    """A free slug from the name: "Delta Foods" → delta-foods, then delta-foods-2, …"""
    base = (slugify(name) or "customer")[:50]
    taken = set(Customer.objects.filter(slug__startswith=base).values_list("slug", flat=True))
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    return slug


class CustomerOnboardForm(BillingIdentityForm):
    """A new customer: its account (name, currency, time zone) and its billing identity."""

    time_zone = forms.ChoiceField(
        label="Time zone",
        help_text="Its billing months and the times its users see. Sites default to it.",
    )

    class Meta(BillingIdentityForm.Meta):
        fields = ["name", "slug", "currency", "time_zone", *FINANCE_FIELDS]
        labels = {**BillingIdentityForm.Meta.labels, "name": "Name", "slug": "Short name (slug)"}
        help_texts = {
            **BillingIdentityForm.Meta.help_texts,
            "slug": "Letters, digits and hyphens. Empty: made from the name.",
            "currency": "What its plans and invoices are priced in.",
        }

    ACCOUNT = ("name", "slug", "currency", "time_zone")

    def __init__(self, data: Any = None, *, default_time_zone: str) -> None:
        super().__init__(data, instance=Customer())
        self.fields["slug"].required = False
        self.fields["time_zone"].choices = time_zone_choices()  # type: ignore[attr-defined]
        self.initial["time_zone"] = default_time_zone if is_offered_zone(default_time_zone) else "UTC"
        self.initial["tax_rate"] = ""  # typed on purpose: a new customer's rate is nobody's default

    def groups(self) -> list[tuple[str, list[forms.BoundField]]]:
        return [("Customer", [self[name] for name in self.ACCOUNT]), *super().groups()]

    def clean_slug(self) -> str:
        slug = str(self.cleaned_data.get("slug") or "").strip()
        return slug or unique_slug(str(self.cleaned_data.get("name") or ""))

    def values(self) -> dict[str, Any]:
        """The cleaned values for `customer_create`."""
        return {name: self.cleaned_data[name] for name in self.Meta.fields}


class AdminInviteForm(forms.Form):
    """The customer's first admin; they set their password from the e-mailed link."""

    email = forms.EmailField(label="E-mail")
    full_name = forms.CharField(label="Name", max_length=200, required=False)
