from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.selectors import invoices_visible_to
from fleet.models import Asset
from portal.api.base import TenantScopedViewSet, request_user
from portal.models import Customer
from portal.roles import Capability, can
from portal.tenancy import customer_id_scope, scoped_get
from support import access, selectors, services
from support.api.serializers import (
    AssignSerializer,
    AttachmentSerializer,
    AttachmentUploadSerializer,
    CommentSerializer,
    CreditSerializer,
    DisputeSerializer,
    PrioritySerializer,
    TicketCreateSerializer,
    TicketEventSerializer,
    TicketSerializer,
    TransitionSerializer,
)
from support.models import Source, Ticket

VIEW = (Capability.VIEW_TICKETS, Capability.RUN_INVOICES)


class TicketViewSet(TenantScopedViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Support tickets: the customer's own; every one for agents; billing ones for finance."""

    model = Ticket
    serializer_class = TicketSerializer
    capabilities = {"*": VIEW, "create": (Capability.OPEN_TICKETS,)}
    parser_classes = (JSONParser, FormParser, MultiPartParser)
    filterset_class = selectors.TicketFilter

    def narrow(self, queryset: Any) -> Any:
        return selectors.ticket_list(actor=self.actor)

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "with_events": self.action != "list"}

    def _detail(self, ticket: Ticket, code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=ticket.pk)
        return Response(TicketSerializer(fresh, context=self.get_serializer_context()).data, status=code)

    @extend_schema(request=TicketCreateSerializer, responses={201: TicketSerializer}, summary="Open a ticket")
    def create(self, request: Request) -> Response:
        data = TicketCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        scope = customer_id_scope(self.actor)
        requested = values.pop("customer", None)  # a customer's users always open their own
        customer_id = requested if scope is None else scope
        customer = scoped_get(Customer.objects.visible_to(self.actor), customer_id, field="customer")
        asset_id = values.pop("asset", None)
        asset = None
        if asset_id:
            assets = Asset.objects.visible_to(self.actor).for_customer(customer)
            asset = scoped_get(assets, asset_id, field="asset")
        source = Source.PORTAL if request.auth is None else Source.API
        ticket = services.ticket_open(
            actor=self.actor, customer=customer, asset=asset, source=source, **values
        )
        return self._detail(ticket, status.HTTP_201_CREATED)

    @extend_schema(request=CommentSerializer, responses={201: TicketEventSerializer}, summary="Comment")
    @action(detail=True, methods=["post"])
    def comments(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()  # a foreign id is a 404 before the body is even read
        data = CommentSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        event = services.ticket_comment(actor=self.actor, ticket=ticket, **data.validated_data)
        return Response(TicketEventSerializer(event).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=TransitionSerializer, responses=TicketSerializer, summary="Change the status")
    @action(detail=True, methods=["post"])
    def transition(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        data = TransitionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ticket = services.ticket_transition(actor=self.actor, ticket=ticket, to=data.validated_data["status"])
        return self._detail(ticket)

    @extend_schema(request=AssignSerializer, responses=TicketSerializer, summary="Assign to an agent")
    @action(detail=True, methods=["post"])
    def assign(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        data = AssignSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assignee = None
        if data.validated_data["assignee"] is not None:
            assignee = scoped_get(
                selectors.assignable_users(), data.validated_data["assignee"], field="assignee", what="agent"
            )
        return self._detail(services.ticket_assign(actor=self.actor, ticket=ticket, assignee=assignee))

    @extend_schema(request=PrioritySerializer, responses=TicketSerializer, summary="Change the priority")
    @action(detail=True, methods=["post"])
    def priority(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        data = PrioritySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ticket = services.ticket_set_priority(
            actor=self.actor, ticket=ticket, priority=data.validated_data["priority"]
        )
        return self._detail(ticket)

    @extend_schema(request=CreditSerializer, responses=TicketSerializer, summary="Settle a dispute")
    @action(detail=True, methods=["post"], url_path="credit-note")
    def credit_note(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        data = CreditSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ticket = services.dispute_credit(actor=self.actor, ticket=ticket, **data.validated_data)
        return self._detail(ticket)

    @extend_schema(
        request={"multipart/form-data": AttachmentUploadSerializer},
        responses={201: AttachmentSerializer},
        summary="Attach a file",
    )
    @action(detail=True, methods=["post"], url_path="attachments")
    def attachments(self, request: Request, pk: str | None = None) -> Response:
        ticket = self.get_object()
        data = AttachmentUploadSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        attachment = services.attachment_add(
            actor=self.actor, ticket=ticket, upload=data.validated_data["file"]
        )
        return Response(AttachmentSerializer(attachment).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        # Served as the type it was accepted as (settings.ATTACHMENT_TYPES, checked on upload).
        responses={(200, content_type): OpenApiTypes.BINARY for content_type in settings.ATTACHMENT_TYPES},
        summary="Download a file",
    )
    @action(detail=True, methods=["get"], url_path=r"attachments/(?P<attachment_id>[0-9a-fA-F-]{36})")
    def attachment(
        self, request: Request, pk: str | None = None, attachment_id: str | None = None
    ) -> FileResponse:
        ticket = self.get_object()
        found = scoped_get(access.attachments_visible_to(self.actor, ticket), attachment_id)
        response = FileResponse(
            found.file.open("rb"), as_attachment=True, filename=found.name, content_type=found.content_type
        )
        response["X-Content-Type-Options"] = "nosniff"
        return response


class DisputeView(APIView):
    """POST /api/v1/invoices/{id}/dispute/: a customer admin disputes an invoice (or one line)."""

    @extend_schema(request=DisputeSerializer, responses={201: TicketSerializer}, summary="Dispute an invoice")
    def post(self, request: Request, pk: str) -> Response:
        user = request_user(request)
        if not can(user, Capability.DISPUTE_INVOICES):
            self.permission_denied(request, message="Only a customer admin disputes an invoice.")
        invoice = scoped_get(invoices_visible_to(user), pk)
        data = DisputeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        line = None
        if data.validated_data.get("line") is not None:
            line = scoped_get(invoice.lines.all(), data.validated_data["line"], field="line")
        ticket = services.dispute_open(
            actor=user, invoice=invoice, reason=data.validated_data["reason"], line=line
        )
        fresh = access.tickets_visible_to(user).get(pk=ticket.pk)
        return Response(
            TicketSerializer(fresh, context={"request": request, "with_events": True}).data,
            status=status.HTTP_201_CREATED,
        )
