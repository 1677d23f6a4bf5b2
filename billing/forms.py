"""Finance's contract form: the same rules as the API, through `billing.services`."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms

from billing.models import PRIORITIES, ContractStatus, Plan
from fleet.models import Asset
from portal.models import Customer

DEFAULT_RESPONSE = {"P1": 60, "P2": 240, "P3": 480, "P4": 1440}
DEFAULT_RESOLUTION = {"P1": 480, "P2": 1440, "P3": 4320, "P4": 10080}


class ContractForm(forms.Form):
    customer = forms.ModelChoiceField(queryset=Customer.objects.none())
    plan = forms.ModelChoiceField(queryset=Plan.objects.filter(is_active=True))
    number = forms.CharField(
        max_length=40, required=False, help_text="Leave empty for the next C-YYYY-NNNNNN."
    )
    start_date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end_date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    status = forms.ChoiceField(choices=ContractStatus.choices, initial=ContractStatus.ACTIVE)
    purchase_order = forms.CharField(
        label="Purchase order",
        max_length=60,
        required=False,
        help_text="The customer's order reference, printed on every invoice of this contract.",
    )
    assets = forms.ModelMultipleChoiceField(
        queryset=Asset.objects.none(), required=False, widget=forms.CheckboxSelectMultiple
    )
    uptime_target = forms.DecimalField(
        max_digits=6, decimal_places=3, required=False, initial=Decimal("99.5")
    )
    service_credits = forms.CharField(
        required=False,
        initial="99.5:5, 99:10",
        help_text="below uptime %: credit % of the fee, comma-separated",
    )

    # Availability terms (docs/availability.md): offline always counts as down.
    down_states = forms.MultipleChoiceField(
        choices=[("fault", "Fault"), ("warning", "Degraded (warning)")],
        required=False,
        initial=["fault"],
        widget=forms.CheckboxSelectMultiple,
        label="Also down besides offline",
    )
    exclude_maintenance = forms.BooleanField(
        required=False, initial=True, label="Leave maintenance windows out of availability"
    )
    exclude_customer_stops = forms.BooleanField(
        required=False, initial=False, label="Leave stops caused by the customer out of availability"
    )
    meter_maintenance = forms.BooleanField(
        required=False, initial=True, label="Bill usage inside maintenance windows"
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["customer"].queryset = Customer.objects.visible_to(user).filter(is_active=True)  # type: ignore[attr-defined]
        self.fields["assets"].queryset = (  # type: ignore[attr-defined]
            Asset.objects.visible_to(user).select_related("customer").order_by("customer__name", "name")
        )
        assets: Any = self.fields["assets"]
        assets.label_from_instance = lambda a: f"{a.customer.name} — {a.name} ({a.serial_number})"
        for priority in PRIORITIES:
            self.fields[f"respond_{priority}"] = forms.IntegerField(
                min_value=1, initial=DEFAULT_RESPONSE[priority], label=f"{priority} first response (min)"
            )
            self.fields[f"resolve_{priority}"] = forms.IntegerField(
                min_value=1, initial=DEFAULT_RESOLUTION[priority], label=f"{priority} resolution (min)"
            )

    def clean_service_credits(self) -> list[dict[str, str]]:
        steps = []
        for part in filter(None, (p.strip() for p in self.cleaned_data["service_credits"].split(","))):
            below, _, percent = part.partition(":")
            try:
                steps.append(
                    {"below": str(Decimal(below.strip())), "credit_percent": str(Decimal(percent.strip()))}
                )
            except InvalidOperation:
                raise forms.ValidationError(
                    "Write steps as 99.5:5, 99:10 (below uptime %: credit %)."
                ) from None
        return steps

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        customer = data.get("customer")
        for asset in data.get("assets") or []:
            if customer is not None and asset.customer_id != customer.pk:
                self.add_error(
                    "assets", f"{asset.name} belongs to {asset.customer.name}, not {customer.name}."
                )
        return data

    def service_kwargs(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {
            "customer": data["customer"],
            "plan": data["plan"],
            "number": data["number"],
            "start_date": data["start_date"],
            "end_date": data["end_date"],
            "status": data["status"],
            "purchase_order": data["purchase_order"],
            "assets": list(data["assets"]),
            "uptime_target": data["uptime_target"],
            "service_credits": data["service_credits"],
            "first_response_minutes": {p: data[f"respond_{p}"] for p in PRIORITIES},
            "resolution_minutes": {p: data[f"resolve_{p}"] for p in PRIORITIES},
            "down_states": ["offline", *(s for s in ("fault", "warning") if s in data["down_states"])],
            "exclude_maintenance": data["exclude_maintenance"],
            "exclude_customer_stops": data["exclude_customer_stops"],
            "meter_maintenance": data["meter_maintenance"],
        }
