"""Finance's plan editor and negotiated-price forms: the same rules as the API, through
`billing.plans` and `billing.overrides`.

A component's tiers are rows of up_to / unit price / flat fee inside the component's form; the
hidden `tier_rows` says how many rows the page sent, so rows added in the browser (or by the
"more rows" button without JavaScript) are read back. Decimals may be typed with a comma or a
dot ("0,25" or "0.25").
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError

from billing.models import Plan, validate_component
from billing.plans import counter_metrics
from billing.rating import ChargeModel
from portal.models import CURRENCY_CHOICES

BLANK_TIER_ROWS = 2  # blank rows below the filled ones, to add tiers without JavaScript
MIN_TIER_ROWS = 3
MAX_TIER_ROWS = 50


class DecimalInput(forms.TextInput):
    """A text box: a number box would refuse the comma many of finance's users type."""

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__({"inputmode": "decimal", "autocomplete": "off", **(attrs or {})})


class LocalDecimalField(forms.DecimalField):
    """A decimal typed with a dot or a comma as the decimal mark, never with both."""

    widget = DecimalInput

    def to_python(self, value: Any) -> Decimal | None:  # type: ignore[override]
        if isinstance(value, str):
            value = value.strip().replace(" ", "")
            if "," in value:
                if "." in value or value.count(",") > 1:
                    raise ValidationError(
                        "Use one decimal mark and no thousands separator, e.g. 1234.50 or 1234,50.",
                        code="invalid",
                    )
                value = value.replace(",", ".")
        return super().to_python(value)

    def widget_attrs(self, widget: forms.Widget) -> dict[str, Any]:
        return {}  # no min/max/step: those belong to number boxes


def money(**options: Any) -> LocalDecimalField:
    return LocalDecimalField(max_digits=16, decimal_places=2, min_value=Decimal("0"), **options)


def price(**options: Any) -> LocalDecimalField:
    return LocalDecimalField(max_digits=18, decimal_places=6, min_value=Decimal("0"), **options)


def quantity(**options: Any) -> LocalDecimalField:
    return LocalDecimalField(max_digits=24, decimal_places=6, min_value=Decimal("0"), **options)


def plain(value: Any) -> str:
    """A stored decimal as a person types it: 0.500000 → 0.5."""
    if value in (None, ""):
        return ""
    text = format(Decimal(str(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class PlanForm(forms.Form):
    code = forms.SlugField(max_length=60, help_text="A short unique name, e.g. flex-2027.")
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    currency = forms.ChoiceField(choices=CURRENCY_CHOICES)
    period_fee = money(help_text="Per month.")
    minimum_commitment = money(required=False, help_text="Per month; empty for none.")
    is_active = forms.BooleanField(required=False, initial=True, label="Offered to new contracts")

    @classmethod
    def initial_of(cls, plan: Plan) -> dict[str, Any]:
        return {
            "code": plan.code,
            "name": plan.name,
            "description": plan.description,
            "currency": plan.currency,
            "period_fee": plain(plan.period_fee),
            "minimum_commitment": plain(plan.minimum_commitment),
            "is_active": plan.is_active,
        }


class PriceTermsForm(forms.Form):
    """One meter's price: a plan's component, or a contract's negotiated price (with `note`)."""

    metric = forms.ChoiceField(label="Meter")
    label = forms.CharField(
        max_length=120, required=False, help_text="On the invoice line; empty: the meter's name."
    )
    unit = forms.CharField(max_length=20, required=False)
    charge_model = forms.ChoiceField(
        choices=[(m, m.replace("_", " ")) for m in ChargeModel.ALL], initial=ChargeModel.PER_UNIT
    )
    unit_price = price(required=False, label="Unit price", help_text="Per-unit pricing.")
    included_units = quantity(required=False, label="Included units")
    package_size = quantity(required=False, label="Package size")
    package_price = price(required=False, label="Package price")
    tier_rows = forms.IntegerField(widget=forms.HiddenInput, required=False)
    # Not an input: where the errors of the tiers as a whole are shown, next to the tier rows.
    tiers = forms.Field(required=False, widget=forms.HiddenInput)

    def __init__(
        self,
        *args: Any,
        tiers: list[dict[str, Any]] | None = None,
        metrics: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        metrics = counter_metrics() if metrics is None else metrics
        self.fields["metric"].choices = [("", "—")] + [  # type: ignore[attr-defined]
            (code, f"{m.label} ({code})") for code, m in metrics.items()
        ]
        self.metric_wording = {code: (m.label, m.unit) for code, m in metrics.items()}
        tiers = tiers or []
        rows = max(len(tiers) + BLANK_TIER_ROWS, MIN_TIER_ROWS)
        if self.is_bound:
            sent = self.data.get(self.add_prefix("tier_rows"))
            rows = int(str(sent)) if str(sent or "").isdigit() else rows
        rows = min(max(rows, 1), MAX_TIER_ROWS)
        self.initial["tier_rows"] = rows
        for index in range(rows):
            tier = tiers[index] if index < len(tiers) else {}
            self.fields[f"tier_{index}_up_to"] = quantity(required=False, label=f"Tier {index + 1} up to")
            self.fields[f"tier_{index}_unit_price"] = price(
                required=False, label=f"Tier {index + 1} unit price"
            )
            self.fields[f"tier_{index}_flat_fee"] = money(required=False, label=f"Tier {index + 1} flat fee")
            for part in ("up_to", "unit_price", "flat_fee"):
                field = self.fields[f"tier_{index}_{part}"]
                field.widget.attrs["aria-label"] = str(field.label)
                self.initial.setdefault(f"tier_{index}_{part}", plain(tier.get(part)))
        self.tier_count = rows

    def tier_rows_bound(self) -> list[dict[str, forms.BoundField]]:
        """The tier rows as bound fields, for the template."""
        return [
            {part: self[f"tier_{i}_{part}"] for part in ("up_to", "unit_price", "flat_fee")}
            for i in range(self.tier_count)
        ]

    def has_changed(self) -> bool:
        # An untouched extra form of the formset stays empty however many blank tier rows it has.
        return any(name != "tier_rows" for name in self.changed_data)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        model = data.get("charge_model")
        tiers: list[dict[str, str | None]] = []
        for index in range(self.tier_count):
            values = {part: data.get(f"tier_{index}_{part}") for part in ("up_to", "unit_price", "flat_fee")}
            if all(v is None for v in values.values()):
                continue  # a blank row
            if values["unit_price"] is None:
                self.add_error(f"tier_{index}_unit_price", "Each tier needs a unit price.")
                continue
            tiers.append(
                {
                    "up_to": None if values["up_to"] is None else str(values["up_to"]),
                    "unit_price": str(values["unit_price"]),
                    "flat_fee": str(values["flat_fee"] or Decimal("0")),
                }
            )
        if model not in (ChargeModel.GRADUATED, ChargeModel.VOLUME):
            tiers = []  # rows left filled in under another charge model are not this price's
        data["tiers"] = tiers
        row_errors = any(name.startswith("tier_") or name == "package_size" for name in self.errors)
        if model and not row_errors:
            for field, message in validate_component(model, tiers, data.get("package_size")).items():
                self.add_error(field, message)
        return data

    def terms(self) -> dict[str, Any]:
        """The service's keyword arguments (after is_valid())."""
        data = self.cleaned_data
        return {
            "metric": data["metric"],
            # The invoice line says what the meter's own definition says, unless typed otherwise.
            "label": data["label"] or self.metric_wording.get(data["metric"], ("", ""))[0],
            "unit": data["unit"] or self.metric_wording.get(data["metric"], ("", ""))[1],
            "charge_model": data["charge_model"],
            "unit_price": data["unit_price"] or Decimal("0"),
            "included_units": data["included_units"] or Decimal("0"),
            "package_size": data["package_size"],
            "package_price": data["package_price"] or Decimal("0"),
            "tiers": data["tiers"],
        }

    @staticmethod
    def initial_of(terms: Any) -> dict[str, Any]:
        return {
            "metric": terms.metric,
            "label": terms.label,
            "unit": terms.unit,
            "charge_model": terms.charge_model,
            "unit_price": plain(terms.unit_price),
            "included_units": plain(terms.included_units),
            "package_size": plain(terms.package_size),
            "package_price": plain(terms.package_price),
        }


class BaseComponentFormSet(forms.BaseFormSet[PriceTermsForm]):
    def __init__(self, *args: Any, tiers: list[list[dict[str, Any]]] | None = None, **kwargs: Any) -> None:
        self._tiers = tiers or []
        self._metrics = counter_metrics()  # once for all the forms
        super().__init__(*args, **kwargs)

    def get_form_kwargs(self, index: int | None) -> dict[str, Any]:
        tiers = self._tiers[index] if index is not None and index < len(self._tiers) else []
        return {**super().get_form_kwargs(index), "tiers": tiers, "metrics": self._metrics}

    def clean(self) -> None:
        seen: set[str] = set()
        for form in self.forms:
            if not hasattr(form, "cleaned_data") or not form.has_changed() or _deleted(form):
                continue
            metric = str(form.cleaned_data.get("metric") or "")
            if metric in seen:
                form.add_error("metric", "This meter is priced twice in the plan.")
            seen.add(metric)

    def components(self) -> list[dict[str, Any]]:
        return [form.terms() for form in self.forms if form.has_changed() and not _deleted(form)]


def _deleted(form: forms.Form) -> bool:
    return bool(form.cleaned_data.get("DELETE"))


ComponentFormSet = cast(
    "type[BaseComponentFormSet]",
    forms.formset_factory(PriceTermsForm, formset=BaseComponentFormSet, extra=1, can_delete=True, max_num=30),
)


class OverrideForm(PriceTermsForm):
    note = forms.CharField(
        max_length=120,
        required=False,
        help_text='Printed on the invoice line; empty: "Negotiated price".',
    )
