from __future__ import annotations

from typing import Any

from django.db.models import Prefetch
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from billing import documents, metering, selectors, services
from billing.api import payments as payment_api
from billing.api.documents import CreditNoteDocumentActions, InvoiceDocumentActions
from billing.api.payments import MarkPaidSerializer, PaymentCreateSerializer, PaymentSerializer
from billing.api.serializers import (
    ContractCreateSerializer,
    ContractSerializer,
    ContractUpdateSerializer,
    ContractUsageSerializer,
    CoverageChangeSerializer,
    CreditNoteCreateSerializer,
    CreditNoteSerializer,
    InvoiceRunCreateSerializer,
    InvoiceRunSerializer,
    InvoiceSerializer,
    LineUsageSerializer,
    PeriodQuerySerializer,
    PlanSerializer,
    VoidSerializer,
)
from billing.models import Contract, CreditNote, Invoice, InvoiceLine, InvoiceRun, Plan
from billing.runs import invoice_run_retry, invoice_run_start
from fleet.models import Asset
from portal import csvfile
from portal.api.base import TenantScopedViewSet
from portal.models import Customer
from portal.roles import Capability
from portal.tenancy import scoped_get, scoped_get_many, scoped_get_or_none

PERIOD = OpenApiParameter("period", OpenApiTypes.STR, description="A month as YYYY-MM (default: this month).")
CSV = csvfile.SCHEMA


class PlanViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Price plans. Staff see the catalogue; a customer sees the plans of its own contracts."""

    model = Plan
    serializer_class = PlanSerializer
    capabilities = {
        "*": (Capability.VIEW_CONTRACTS, Capability.MANAGE_PLANS),
        "create": (Capability.MANAGE_PLANS,),
        "partial_update": (Capability.MANAGE_PLANS,),
    }

    def narrow(self, queryset: Any) -> Any:
        return queryset.prefetch_related("components")

    @extend_schema(request=PlanSerializer, responses={201: PlanSerializer}, summary="Create a plan")
    def create(self, request: Request) -> Response:
        data = PlanSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        components = [dict(c) for c in values.pop("components", [])]
        plan = services.plan_create(actor=self.actor, components=components, **values)
        return Response(PlanSerializer(plan).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=PlanSerializer, responses=PlanSerializer, summary="Change a plan")
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        plan = self.get_object()
        data = PlanSerializer(plan, data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        components = values.pop("components", None)
        specs = None if components is None else [dict(c) for c in components]
        plan = services.plan_update(actor=self.actor, plan=plan, components=specs, **values)
        return Response(PlanSerializer(self.get_queryset().get(pk=plan.pk)).data)


class ContractViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Service contracts: a customer's assets under a plan, with SLA terms."""

    model = Contract
    serializer_class = ContractSerializer
    capabilities = {
        "*": (Capability.VIEW_CONTRACTS,),
        "create": (Capability.MANAGE_CONTRACTS,),
        "partial_update": (Capability.MANAGE_CONTRACTS,),
        "assets": (Capability.MANAGE_CONTRACTS,),
        "remove_asset": (Capability.MANAGE_CONTRACTS,),
        "usage": (Capability.VIEW_USAGE,),
    }

    def narrow(self, queryset: Any) -> Any:
        return selectors.contracts_visible_to(self.actor).prefetch_related("coverages__asset")

    def _asset(self, contract: Contract, asset_id: Any) -> Asset:
        assets = Asset.objects.visible_to(self.actor).for_customer(contract.customer_id)
        return scoped_get(assets, asset_id, field="asset")

    def _refreshed(self, contract: Contract) -> dict[str, Any]:
        return dict(ContractSerializer(self.get_queryset().get(pk=contract.pk)).data)

    @extend_schema(
        request=ContractCreateSerializer, responses={201: ContractSerializer}, summary="Create a contract"
    )
    def create(self, request: Request) -> Response:
        data = ContractCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        customer = scoped_get(
            Customer.objects.visible_to(self.actor), values.pop("customer"), field="customer"
        )
        plan = scoped_get(Plan.objects.visible_to(self.actor), values.pop("plan"), field="plan")
        assets = scoped_get_many(
            Asset.objects.visible_to(self.actor).for_customer(customer),
            values.pop("assets"),
            field="assets",
            what="asset",
        )
        contract = services.contract_create(
            actor=self.actor, customer=customer, plan=plan, assets=assets, **values
        )
        return Response(self._refreshed(contract), status=status.HTTP_201_CREATED)

    @extend_schema(
        request=ContractUpdateSerializer, responses=ContractSerializer, summary="Change a contract"
    )
    def partial_update(self, request: Request, pk: str | None = None) -> Response:
        contract = self.get_object()
        data = ContractUpdateSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        if "plan" in values:
            values["plan"] = scoped_get(Plan.objects.visible_to(self.actor), values["plan"], field="plan")
        contract = services.contract_update(actor=self.actor, contract=contract, **values)
        return Response(self._refreshed(contract))

    @extend_schema(request=CoverageChangeSerializer, responses=ContractSerializer, summary="Cover an asset")
    @action(detail=True, methods=["post"])
    def assets(self, request: Request, pk: str | None = None) -> Response:
        contract = self.get_object()
        data = CoverageChangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        asset = self._asset(contract, data.validated_data["asset"])
        services.contract_add_asset(
            actor=self.actor, contract=contract, asset=asset, covered_from=data.validated_data["at"]
        )
        return Response(self._refreshed(contract))

    @extend_schema(
        request=CoverageChangeSerializer, responses=ContractSerializer, summary="Stop covering an asset"
    )
    @action(detail=True, methods=["post"], url_path="assets/remove")
    def remove_asset(self, request: Request, pk: str | None = None) -> Response:
        contract = self.get_object()
        data = CoverageChangeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        asset = self._asset(contract, data.validated_data["asset"])
        services.contract_remove_asset(
            actor=self.actor, contract=contract, asset=asset, at=data.validated_data["at"]
        )
        return Response(self._refreshed(contract))

    @extend_schema(
        parameters=[PERIOD], responses=ContractUsageSerializer, summary="Usage to date and projection"
    )
    @action(detail=True, methods=["get"])
    def usage(self, request: Request, pk: str | None = None) -> Response:
        contract = self.get_object()
        query = PeriodQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        now = timezone.now()
        label = (
            query.validated_data.get("period")
            or metering.period_containing(now, contract.customer.time_zone).label
        )
        return Response(ContractUsageSerializer(selectors.contract_usage(contract, label, now=now)).data)


class InvoiceRunViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Finance's invoice runs and their progress (also pushed live as `invoice_run.progress`)."""

    model = InvoiceRun
    serializer_class = InvoiceRunSerializer
    capabilities = {"*": (Capability.RUN_INVOICES,)}

    @extend_schema(
        request=InvoiceRunCreateSerializer, responses={202: InvoiceRunSerializer}, summary="Start a run"
    )
    def create(self, request: Request) -> Response:
        data = InvoiceRunCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = invoice_run_start(actor=self.actor, period=data.validated_data["period"])
        return Response(InvoiceRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={202: InvoiceRunSerializer}, summary="Retry a failed run")
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str | None = None) -> Response:
        run = invoice_run_retry(actor=self.actor, run=self.get_object())
        return Response(InvoiceRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class InvoiceViewSet(
    InvoiceDocumentActions, TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin
):
    """Invoices. Customer admins see their finalized invoices; finance sees and changes all."""

    model = Invoice
    serializer_class = InvoiceSerializer
    filterset_class = selectors.InvoiceFilter
    capabilities = {
        "*": (Capability.VIEW_INVOICES,),
        "finalize": (Capability.RUN_INVOICES,),
        "void": (Capability.RUN_INVOICES,),
        "mark_paid": (Capability.RECORD_PAYMENTS,),
    }

    def narrow(self, queryset: Any) -> Any:
        return selectors.invoices_visible_to(self.actor).prefetch_related(
            Prefetch("lines", queryset=InvoiceLine.objects.order_by("position")), "credit_notes__invoice"
        )

    def _done(self, invoice: Invoice) -> Response:
        return Response(InvoiceSerializer(self.get_queryset().get(pk=invoice.pk)).data)

    @extend_schema(request=None, responses=InvoiceSerializer, summary="Finalize a draft (numbers it)")
    @action(detail=True, methods=["post"])
    def finalize(self, request: Request, pk: str | None = None) -> Response:
        return self._done(services.invoice_finalize(actor=self.actor, invoice=self.get_object()))

    @extend_schema(request=VoidSerializer, responses=InvoiceSerializer, summary="Void an invoice")
    @action(detail=True, methods=["post"])
    def void(self, request: Request, pk: str | None = None) -> Response:
        data = VoidSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        invoice = services.invoice_void(
            actor=self.actor, invoice=self.get_object(), reason=data.validated_data["reason"]
        )
        return self._done(invoice)

    @extend_schema(
        request=MarkPaidSerializer,
        responses=InvoiceSerializer,
        summary="Record a payment of the whole amount due",
        description="Kept for scripts written before payments: the same as POST payments/ with "
        "the amount due (received today in the customer's time zone unless received_on is given).",
    )
    @action(detail=True, methods=["post"], url_path="mark-paid")
    def mark_paid(self, request: Request, pk: str | None = None) -> Response:
        invoice = self.get_object()
        payment_api.invoice_mark_paid(self, request, invoice)
        return self._done(invoice)

    @extend_schema(
        methods=["GET"],
        responses=PaymentSerializer(many=True),
        summary="The payments of an invoice (all of them: not paginated)",
    )
    @extend_schema(
        methods=["POST"],
        request=PaymentCreateSerializer,
        responses={201: PaymentSerializer},
        summary="Record a payment (at most the amount due)",
    )
    @action(detail=True, methods=["get", "post"], pagination_class=None)
    def payments(self, request: Request, pk: str | None = None) -> Response:
        return payment_api.invoice_payments(self, request, self.get_object())

    @extend_schema(
        methods=["GET"],
        responses=CreditNoteSerializer(many=True),
        summary="The credit notes of an invoice (all of them: not paginated)",
    )
    @extend_schema(
        methods=["POST"],
        request=CreditNoteCreateSerializer,
        responses={201: CreditNoteSerializer},
        summary="Issue a credit note",
    )
    @action(detail=True, methods=["get", "post"], url_path="credit-notes", pagination_class=None)
    def credit_notes(self, request: Request, pk: str | None = None) -> Response:
        invoice = self.get_object()
        if request.method == "GET":
            notes = selectors.credit_notes_visible_to(self.actor).filter(invoice=invoice)
            return Response(CreditNoteSerializer(notes, many=True).data)
        if not self.actor.can(Capability.RUN_INVOICES):
            self.permission_denied(request, message="Your role does not allow this.")
        data = CreditNoteCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        note = services.credit_note_create(actor=self.actor, invoice=invoice, **data.validated_data)
        return Response(CreditNoteSerializer(note).data, status=status.HTTP_201_CREATED)

    def _usage_line(self, line_id: str | None) -> tuple[Invoice, InvoiceLine, Any]:
        invoice = self.get_object()
        line = scoped_get_or_none(invoice.lines.exclude(metric=""), line_id)
        if line is None:
            raise NotFound("No such usage line on this invoice.")
        period = metering.period_of(line.period, invoice.customer.time_zone)
        return invoice, line, metering.hourly_rows(invoice.contract, period, line.metric)

    @extend_schema(
        responses=LineUsageSerializer, summary="The hourly usage behind one line (billing provenance)"
    )
    @action(detail=True, methods=["get"], url_path=r"lines/(?P<line_id>[0-9]+)/usage")
    def line_usage(self, request: Request, pk: str | None = None, line_id: str | None = None) -> Response:
        _, line, rows = self._usage_line(line_id)
        as_local = serializers.DateTimeField().to_representation  # in the user's time zone
        return Response(
            {
                "line": line.pk,
                "metric": line.metric,
                "period": line.period,
                "quantity": str(line.quantity),
                "hours": [
                    {"hour": as_local(r.hour), "asset": str(r.asset_id),
                     "serial_number": r.asset.serial_number,
                     "quantity": str(r.quantity)}
                    for r in rows
                ],
            }
        )  # fmt: skip

    @extend_schema(responses=CSV, summary="The hourly usage behind one line, as CSV")
    def line_usage_csv(self, request: Request, pk: str | None = None, line_id: str | None = None) -> Any:
        invoice, line, rows = self._usage_line(line_id)
        name = f"{invoice.number or invoice.pk}-line{line.position}-{line.metric}.csv"
        response = StreamingHttpResponse(
            documents.csv_rows(
                ["hour_utc", "asset", "metric", "quantity"], documents.usage_rows(rows.iterator())
            ),
            content_type="text/csv",
        )
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    @extend_schema(
        parameters=[PERIOD],
        responses=CSV,
        summary="Invoice lines, credit notes and payments of a period as CSV",
    )
    def export_csv(self, request: Request) -> StreamingHttpResponse:
        query = PeriodQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        invoices = selectors.invoices_visible_to(self.actor).order_by("period", "contract__number")
        period = query.validated_data.get("period")
        if period:
            invoices = invoices.filter(period=period)
        invoices = invoices.prefetch_related(
            Prefetch("lines", queryset=InvoiceLine.objects.order_by("position")), "credit_notes", "payments"
        )
        response = StreamingHttpResponse(
            documents.csv_rows(documents.INVOICE_EXPORT_HEADER, documents.invoice_export_rows(invoices)),
            content_type="text/csv",
        )
        response["Content-Disposition"] = f'attachment; filename="invoices-{period or "all"}.csv"'
        return response


class CreditNoteViewSet(
    CreditNoteDocumentActions, TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin
):
    model = CreditNote
    serializer_class = CreditNoteSerializer
    capabilities = {"*": (Capability.VIEW_INVOICES,)}

    def narrow(self, queryset: Any) -> Any:
        return selectors.credit_notes_visible_to(self.actor)
