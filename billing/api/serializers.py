from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from rest_framework import serializers

from billing.models import (
    PRIORITIES,
    Contract,
    ContractAsset,
    ContractStatus,
    CreditNote,
    Invoice,
    InvoiceLine,
    InvoiceRun,
    Plan,
    PriceComponent,
    validate_component,
)
from billing.rating import ChargeModel
from billing.selectors import validate_period
from portal.validation import validate_day, validate_moment


class TierSerializer(serializers.Serializer[dict[str, Any]]):
    up_to = serializers.DecimalField(max_digits=24, decimal_places=6, allow_null=True, min_value=0)
    unit_price = serializers.DecimalField(max_digits=18, decimal_places=6, min_value=0)
    flat_fee = serializers.DecimalField(
        max_digits=16, decimal_places=2, min_value=0, required=False, default=Decimal("0")
    )


class PriceComponentSerializer(serializers.ModelSerializer[PriceComponent]):
    tiers = TierSerializer(many=True, required=False)
    charge_model = serializers.ChoiceField(choices=ChargeModel.ALL)

    class Meta:
        model = PriceComponent
        fields = [
            "metric", "label", "unit", "charge_model", "unit_price", "included_units", "package_size",
            "package_price", "tiers",
        ]  # fmt: skip

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return validate_price_terms(attrs)


def validate_price_terms(attrs: dict[str, Any]) -> dict[str, Any]:
    """A component's or a negotiated price's terms: tiers stored as decimal strings, and the rules
    of `validate_component`."""
    tiers = [
        {k: (None if v is None else str(v)) for k, v in tier.items()} for tier in attrs.get("tiers") or []
    ]
    attrs["tiers"] = tiers
    errors = validate_component(attrs["charge_model"], tiers, attrs.get("package_size"))
    if errors:
        raise serializers.ValidationError(errors)
    return attrs


class PlanSerializer(serializers.ModelSerializer[Plan]):
    components = PriceComponentSerializer(many=True, required=False)

    class Meta:
        model = Plan
        fields = [
            "id", "code", "name", "description", "currency", "period_fee", "minimum_commitment",
            "is_active", "components", "version", "created_at",
        ]  # fmt: skip
        read_only_fields = ["id", "version", "created_at"]
        # The model's default is no reason to guess the currency of a new price list.
        extra_kwargs = {"currency": {"required": True}}


class CoverageSerializer(serializers.ModelSerializer[ContractAsset]):
    serial_number = serializers.CharField(source="asset.serial_number", read_only=True)
    name = serializers.CharField(source="asset.name", read_only=True)

    class Meta:
        model = ContractAsset
        fields = ["asset", "serial_number", "name", "covered_from", "covered_until"]


class SlaTermsMixin(serializers.Serializer[Contract]):
    first_response_minutes = serializers.DictField(
        child=serializers.IntegerField(min_value=1), required=False
    )
    resolution_minutes = serializers.DictField(child=serializers.IntegerField(min_value=1), required=False)
    uptime_target = serializers.DecimalField(
        max_digits=6, decimal_places=3, min_value=0, max_value=100, allow_null=True, required=False
    )
    service_credits = serializers.ListField(child=serializers.DictField(), required=False)

    def validate_first_response_minutes(self, value: dict[str, int]) -> dict[str, int]:
        return _priorities(value)

    def validate_resolution_minutes(self, value: dict[str, int]) -> dict[str, int]:
        return _priorities(value)


DOWN_STATES = ["offline", "fault", "warning"]  # billing.availability.DOWN_CHOICES


def ordered_down_states(chosen: Iterable[object] | None) -> list[str]:
    """The chosen down states in a fixed order, offline always among them (docs/availability.md)."""
    picked = {str(s) for s in chosen or []} | {"offline"}
    return [s for s in DOWN_STATES if s in picked]


class AvailabilityTermsMixin(serializers.Serializer[Contract]):
    """The contract's availability terms (docs/availability.md)."""

    down_states = serializers.MultipleChoiceField(
        choices=DOWN_STATES, required=False,
        help_text="Statuses that count as down; offline always does. warning is degraded.",
    )  # fmt: skip
    exclude_maintenance = serializers.BooleanField(
        required=False, help_text="Maintenance windows are left out of availability (default true)."
    )
    exclude_customer_stops = serializers.BooleanField(
        required=False, help_text="Stops marked as caused by the customer are left out (default false)."
    )
    meter_maintenance = serializers.BooleanField(
        required=False, help_text="Usage in maintenance windows is billed (default true)."
    )

    def validate_down_states(self, value: Iterable[object]) -> list[str]:
        return ordered_down_states(value)


def _priorities(value: dict[str, int]) -> dict[str, int]:
    unknown = sorted(set(value) - set(PRIORITIES))
    if unknown:
        raise serializers.ValidationError(f"Unknown priorities {unknown}; use P1–P4.")
    return value


class ContractSerializer(serializers.ModelSerializer[Contract]):
    plan_name = serializers.CharField(source="plan.name", read_only=True)
    customer_name = serializers.CharField(source="customer.name", read_only=True)
    assets = CoverageSerializer(source="coverages", many=True, read_only=True)

    class Meta:
        model = Contract
        fields = [
            "id", "number", "customer", "customer_name", "plan", "plan_name", "start_date", "end_date",
            "status", "purchase_order", "first_response_minutes", "resolution_minutes", "uptime_target",
            "service_credits", "down_states", "exclude_maintenance", "exclude_customer_stops",
            "meter_maintenance", "assets", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


PURCHASE_ORDER_HELP = "The customer's order reference, printed on every invoice of the contract."


class ContractCreateSerializer(SlaTermsMixin, AvailabilityTermsMixin):
    customer = serializers.UUIDField()
    plan = serializers.UUIDField()
    number = serializers.CharField(max_length=40, required=False, allow_blank=True, default="")
    start_date = serializers.DateField(validators=[validate_day])
    end_date = serializers.DateField(required=False, allow_null=True, default=None, validators=[validate_day])
    status = serializers.ChoiceField(choices=ContractStatus.choices, default=ContractStatus.ACTIVE)
    assets = serializers.ListField(child=serializers.UUIDField(), required=False, default=list)
    purchase_order = serializers.CharField(
        max_length=60, required=False, default="", allow_blank=True, help_text=PURCHASE_ORDER_HELP
    )


class ContractUpdateSerializer(SlaTermsMixin, AvailabilityTermsMixin):
    plan = serializers.UUIDField(required=False)
    end_date = serializers.DateField(required=False, allow_null=True, validators=[validate_day])
    status = serializers.ChoiceField(choices=ContractStatus.choices, required=False)
    purchase_order = serializers.CharField(
        max_length=60, required=False, allow_blank=True, help_text=PURCHASE_ORDER_HELP
    )


class CoverageChangeSerializer(serializers.Serializer[dict[str, Any]]):
    asset = serializers.UUIDField()
    at = serializers.DateTimeField(
        required=False, allow_null=True, default=None, validators=[validate_moment]
    )


class PeriodQuerySerializer(serializers.Serializer[dict[str, Any]]):
    period = serializers.CharField(required=False, validators=[validate_period])


class MeterUsageSerializer(serializers.Serializer[Any]):
    metric = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]
    unit = serializers.CharField()
    quantity = serializers.DecimalField(max_digits=24, decimal_places=6)
    amount = serializers.DecimalField(max_digits=16, decimal_places=2)
    projected_quantity = serializers.DecimalField(max_digits=24, decimal_places=6)
    projected_amount = serializers.DecimalField(max_digits=16, decimal_places=2)


class DailyUsageSerializer(serializers.Serializer[Any]):
    metric = serializers.CharField()
    day = serializers.DateField()
    quantity = serializers.DecimalField(max_digits=24, decimal_places=6)


class ContractUsageSerializer(serializers.Serializer[Any]):
    contract = serializers.UUIDField(source="contract.pk")
    period = serializers.CharField(source="period.label")
    period_start = serializers.DateTimeField(source="period.start")
    period_end = serializers.DateTimeField(source="period.end")
    currency = serializers.CharField()
    elapsed = serializers.DecimalField(max_digits=5, decimal_places=4)
    meters = MeterUsageSerializer(many=True)
    period_fee = serializers.DecimalField(max_digits=16, decimal_places=2)
    subtotal_so_far = serializers.DecimalField(max_digits=16, decimal_places=2)
    projected_subtotal = serializers.DecimalField(max_digits=16, decimal_places=2)
    projected_total = serializers.DecimalField(max_digits=16, decimal_places=2)
    uptime = serializers.DecimalField(max_digits=7, decimal_places=4, allow_null=True)
    uptime_target = serializers.DecimalField(max_digits=6, decimal_places=3, allow_null=True)
    daily = DailyUsageSerializer(many=True)


class InvoiceRunSerializer(serializers.ModelSerializer[InvoiceRun]):
    percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = InvoiceRun
        fields = [
            "id", "period", "status", "total", "processed", "percent", "created_count", "updated_count",
            "skipped_count", "error", "created_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class InvoiceRunCreateSerializer(serializers.Serializer[dict[str, Any]]):
    period = serializers.CharField(validators=[validate_period])


class InvoiceLineSerializer(serializers.ModelSerializer[InvoiceLine]):
    class Meta:
        model = InvoiceLine
        fields = [
            "id",
            "position",
            "kind",
            "description",
            "metric",
            "period",
            "quantity",
            "unit_price",
            "amount",
            "detail",
        ]


class CreditNoteSerializer(serializers.ModelSerializer[CreditNote]):
    invoice_number = serializers.CharField(source="invoice.number", read_only=True)

    class Meta:
        model = CreditNote
        fields = [
            "id",
            "number",
            "invoice",
            "invoice_number",
            "reason",
            "currency",
            "amount",
            "tax",
            "total",
            "created_at",
            "emailed_at",
        ]
        read_only_fields = fields


class CreditNoteCreateSerializer(serializers.Serializer[dict[str, Any]]):
    amount = serializers.DecimalField(max_digits=16, decimal_places=2, min_value=0)
    reason = serializers.CharField(max_length=2000)


class PartySerializer(serializers.Serializer[dict[str, str]]):
    """A party as a finalized invoice keeps it (docs/billing.md, "Billing identity"); a field the
    party does not have is left out. Only ever written (nested read-only in InvoiceSerializer);
    its fields are not marked read-only so that the schema does not call them all required."""

    name = serializers.CharField()
    address_line1 = serializers.CharField(required=False)
    address_line2 = serializers.CharField(required=False)
    postal_code = serializers.CharField(required=False)
    city = serializers.CharField(required=False)
    country = serializers.CharField(required=False, help_text="ISO 3166-1 alpha-2")
    vat_id = serializers.CharField(required=False)
    email = serializers.CharField(required=False)
    tax_category = serializers.CharField(required=False, help_text="UNCL 5305 (buyer)")
    tax_exemption_reason = serializers.CharField(required=False)
    purchase_order = serializers.CharField(required=False)
    iban = serializers.CharField(required=False, help_text="seller")
    bic = serializers.CharField(required=False, help_text="seller")

    def to_representation(self, instance: dict[str, str]) -> dict[str, str] | None:  # type: ignore[override]
        """A draft keeps no parties yet (an empty dict): null."""
        return super().to_representation(instance) if instance else None


class InvoiceSerializer(serializers.ModelSerializer[Invoice]):
    contract_number = serializers.CharField(source="contract.number", read_only=True)
    customer_name = serializers.CharField(source="customer.name", read_only=True)
    lines = InvoiceLineSerializer(many=True, read_only=True)
    credit_notes = CreditNoteSerializer(many=True, read_only=True)
    seller = PartySerializer(
        read_only=True, allow_null=True, help_text="Kept when finalized; null on a draft."
    )
    bill_to = PartySerializer(
        read_only=True, allow_null=True, help_text="The buyer as finalized; null on a draft."
    )

    class Meta:
        model = Invoice
        fields = [
            "id", "number", "status", "customer", "customer_name", "contract", "contract_number", "period",
            "period_start", "period_end", "currency", "tax_rate", "subtotal", "tax", "total", "uptime",
            "amount_due", "overdue_since", "emailed_at", "finalized_at", "due_date", "paid_at",
            "voided_at", "void_reason", "seller", "bill_to", "lines", "credit_notes", "created_at",
            "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class LineUsageHourSerializer(serializers.Serializer[dict[str, Any]]):
    hour = serializers.DateTimeField()
    asset = serializers.UUIDField()
    serial_number = serializers.CharField()
    quantity = serializers.DecimalField(max_digits=24, decimal_places=6)


class LineUsageSerializer(serializers.Serializer[dict[str, Any]]):
    """The answer of GET /invoices/{id}/lines/{line}/usage/ (built in the view; described here)."""

    line = serializers.IntegerField()
    metric = serializers.CharField()
    period = serializers.CharField()
    quantity = serializers.DecimalField(max_digits=24, decimal_places=6)
    hours = LineUsageHourSerializer(many=True)


class VoidSerializer(serializers.Serializer[dict[str, Any]]):
    reason = serializers.CharField(max_length=2000)
