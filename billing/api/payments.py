"""The payment API: GET /api/v1/payments/ (+ detail), and the serializers of
GET/POST /api/v1/invoices/{id}/payments/ and POST /api/v1/invoices/{id}/mark-paid/
(the invoice viewset's actions call `invoice_payments` / `invoice_mark_paid` here)."""

from __future__ import annotations

from typing import Any

from rest_framework import mixins, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from billing import payments
from billing.models import Invoice, Payment, PaymentMethod
from portal.api.base import TenantScopedViewSet
from portal.models import User
from portal.roles import Capability
from portal.validation import validate_day


class PaymentSerializer(serializers.ModelSerializer[Payment]):
    invoice_number = serializers.CharField(source="invoice.number", read_only=True)
    customer_name = serializers.CharField(source="customer.name", read_only=True)
    created_by = serializers.EmailField(
        source="created_by.email",
        read_only=True,
        allow_null=True,
        help_text="Who recorded it: provider staff see the address; a customer's users see null.",
    )

    def to_representation(self, instance: Payment) -> dict[str, Any]:
        data: dict[str, Any] = super().to_representation(instance)
        request = self.context.get("request")
        if request is None or getattr(request.user, "customer_id", None) is not None:
            data["created_by"] = None  # staff addresses are the provider's business
        return data

    class Meta:
        model = Payment
        fields = [
            "id", "invoice", "invoice_number", "customer", "customer_name", "received_on", "amount",
            "currency", "method", "reference", "note", "created_by", "created_at",
        ]  # fmt: skip
        read_only_fields = fields


class PaymentCreateSerializer(serializers.Serializer[dict[str, Any]]):
    """A payment received: the amount at the currency's minor unit, at most the amount due."""

    amount = serializers.DecimalField(max_digits=16, decimal_places=2, min_value=0)
    received_on = serializers.DateField(
        required=False, help_text="Default: today in the customer's time zone.", validators=[validate_day]
    )
    method = serializers.ChoiceField(choices=PaymentMethod.choices)
    reference = serializers.CharField(max_length=140, required=False, allow_blank=True, default="")
    note = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class MarkPaidSerializer(serializers.Serializer[dict[str, Any]]):
    """The old "mark paid": one payment of the whole amount due (docs/api.md)."""

    received_on = serializers.DateField(
        required=False, help_text="Default: today in the customer's time zone.", validators=[validate_day]
    )
    method = serializers.ChoiceField(choices=PaymentMethod.choices, default=PaymentMethod.BANK_TRANSFER)
    reference = serializers.CharField(max_length=140, required=False, allow_blank=True, default="")


def record(actor: User, invoice: Invoice, data: dict[str, Any]) -> Payment:
    values = dict(data)
    if values.get("received_on") is None:
        values["received_on"] = payments.local_today(invoice.customer.time_zone)
    return payments.payment_record(actor=actor, invoice=invoice, **values)


def invoice_payments(view: Any, request: Request, invoice: Invoice) -> Response:
    """GET: the invoice's payments (all of them); POST: record one (RECORD_PAYMENTS)."""
    if request.method == "GET":
        rows = (
            payments.payments_visible_to(view.actor)
            .filter(invoice=invoice)
            .order_by("received_on", "created_at")
        )
        return Response(PaymentSerializer(rows, many=True, context={"request": request}).data)
    if not view.actor.can(Capability.RECORD_PAYMENTS):
        view.permission_denied(request, message="Your role does not allow this.")
    data = PaymentCreateSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    payment = record(view.actor, invoice, data.validated_data)
    fresh = payments.payments_visible_to(view.actor).get(pk=payment.pk)
    return Response(
        PaymentSerializer(fresh, context={"request": request}).data, status=status.HTTP_201_CREATED
    )


def invoice_mark_paid(view: Any, request: Request, invoice: Invoice) -> Payment:
    data = MarkPaidSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    return record(view.actor, invoice, {**data.validated_data, "amount": invoice.amount_due})


class PaymentViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Payments received. Finance sees all; a customer admin its own customer's."""

    model = Payment
    serializer_class = PaymentSerializer
    filterset_class = payments.PaymentFilter
    capabilities = {"*": (Capability.VIEW_INVOICES,)}

    def narrow(self, queryset: Any) -> Any:
        return payments.payments_visible_to(self.actor).order_by("-received_on", "-created_at")
