"""The billing identity page's form: a customer's legal name, address, VAT ID, tax and locale.

Validated as the model validates (`Customer.clean`: the VAT ID by python-stdnum, the tax
category's rules) on a copy of the customer, so errors land next to their fields; the view then
writes through `portal.services.customer_update`, which validates once more and audits.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError

from portal.forms import locale_choices
from portal.models import Customer, TaxCategory, validate_vat_id
from portal.services import FINANCE_FIELDS

HUNDRED = Decimal(100)


def percent_text(fraction: Decimal) -> str:
    """0.0625 → "6.25", 0.1900 → "19": the percentage as typed, every digit kept, none added."""
    return format((fraction * HUNDRED).normalize(), "f")


class PercentField(forms.DecimalField):
    """A percentage typed as people write it (19, 6.25, 6,25); cleaned to the stored fraction."""

    widget = forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(min_value=Decimal(0), max_value=HUNDRED, max_digits=6, decimal_places=2, **kwargs)

    def clean(self, value: Any) -> Decimal | None:
        if isinstance(value, str):
            value = value.strip().removesuffix("%").strip().replace(",", ".")
        percent = super().clean(value)
        return None if percent is None else percent / HUNDRED


class BillingIdentityForm(forms.ModelForm[Customer]):
    tax_rate = PercentField(
        label="Tax rate (%)",
        help_text="As a percentage: 19 for 19 %, 6.25 for 6.25 %. 0 when no VAT is charged.",
    )
    locale = forms.ChoiceField(
        label="Locale",
        help_text="How numbers, money and dates read on its invoices and for its users.",
    )

    class Meta:
        model = Customer
        fields = list(FINANCE_FIELDS)
        labels = {
            "legal_name": "Legal name",
            "address_line1": "Street and number",
            "tax_category": "Tax category",
            "tax_exemption_reason": "Reason no VAT is charged",
            "billing_email": "Billing e-mail",
        }
        help_texts = {
            "legal_name": "As registered; empty prints the customer's name.",
            "tax_exemption_reason": (
                "Required when no VAT is charged, printed on its invoices, e.g. "
                "“Reverse charge: the recipient is liable for VAT (Art. 196 VAT Directive).”"
            ),
        }

    # The groups the page shows the fields in (legend, field names).
    GROUPS = (
        ("Legal name and address",
         ("legal_name", "address_line1", "address_line2", "postal_code", "city", "country")),
        ("Tax", ("vat_id", "tax_rate", "tax_category", "tax_exemption_reason")),
        ("Invoices", ("billing_email", "locale")),
    )  # fmt: skip

    def __init__(self, data: Any = None, *, instance: Customer) -> None:
        super().__init__(data, instance=instance)
        self.initial["tax_rate"] = percent_text(instance.tax_rate)
        cast(forms.ChoiceField, self.fields["locale"]).choices = locale_choices(instance.locale)
        self.fields["vat_id"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})

    def groups(self) -> list[tuple[str, list[forms.BoundField]]]:
        return [(legend, [self[name] for name in names]) for legend, names in self.GROUPS]

    def clean_vat_id(self) -> str:
        """python-stdnum's verdict (check digit, length, country code); the compact form."""
        value = str(self.cleaned_data.get("vat_id") or "").strip()
        if not value:
            return ""
        if not value[:2].isalpha():  # stdnum would say the format is wrong: say what is missing
            raise forms.ValidationError("Start the VAT ID with its country code, e.g. DE123456788.")
        try:
            return validate_vat_id(value)
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages[0]) from None

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("tax_category") == TaxCategory.STANDARD and data.get("tax_rate") == 0:
            # EN 16931 (BR-S-05): a standard-rated invoice charges VAT above 0 %.
            self.add_error(
                "tax_category",
                "The standard rate charges VAT: give the rate, or choose why no VAT is charged.",
            )
        return data

    def changes(self) -> dict[str, Any]:
        """The cleaned values for `customer_update` (it writes and audits the ones that differ)."""
        return {name: self.cleaned_data[name] for name in FINANCE_FIELDS}
