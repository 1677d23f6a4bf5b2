from __future__ import annotations

from typing import Any

from rest_framework import serializers

from support import access
from support.models import Attachment, Category, Priority, Status, Ticket, TicketEvent


class TicketEventSerializer(serializers.ModelSerializer[TicketEvent]):
    author = serializers.SerializerMethodField()

    class Meta:
        model = TicketEvent
        fields = ["id", "kind", "author", "body", "internal", "from_status", "to_status", "created_at"]

    def get_author(self, event: TicketEvent) -> str | None:
        if event.author is None:
            return None
        return event.author.full_name or event.author.email


class AttachmentSerializer(serializers.ModelSerializer[Attachment]):
    url = serializers.SerializerMethodField()

    class Meta:
        model = Attachment
        fields = ["id", "name", "content_type", "size", "created_at", "url"]

    def get_url(self, attachment: Attachment) -> str:
        return f"/api/v1/tickets/{attachment.ticket_id}/attachments/{attachment.pk}/"


class TicketSerializer(serializers.ModelSerializer[Ticket]):
    customer_name = serializers.CharField(source="customer.name", read_only=True)
    # null when the ticket has no asset, invoice, contract or assignee (allow_null: the schema says so).
    asset_name = serializers.CharField(source="asset.name", read_only=True, default=None, allow_null=True)
    invoice_number = serializers.CharField(
        source="invoice.number", read_only=True, default=None, allow_null=True
    )
    contract_number = serializers.CharField(
        source="contract.number", read_only=True, default=None, allow_null=True
    )
    assignee_email = serializers.EmailField(
        source="assignee.email", read_only=True, default=None, allow_null=True
    )
    resolution_due = serializers.DateTimeField(read_only=True)
    next_due = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="null once resolved, or while waiting for the customer"
    )
    events = serializers.SerializerMethodField()
    attachments = serializers.SerializerMethodField()

    class Meta:
        model = Ticket
        fields = [
            "id", "number", "customer", "customer_name", "subject", "description", "category", "priority",
            "status", "source", "asset", "asset_name", "contract", "contract_number", "invoice",
            "invoice_number", "invoice_line", "credit_note", "assignee", "assignee_email", "created_at",
            "updated_at", "sla_source", "first_response_minutes", "resolution_minutes", "first_response_due",
            "resolution_due", "next_due", "first_responded_at", "resolved_at", "closed_at",
            "first_response_breached", "resolution_breached", "sla_state", "events", "attachments",
        ]  # fmt: skip
        read_only_fields = fields

    def get_attachments(self, ticket: Ticket) -> list[dict[str, Any]]:
        request = self.context.get("request")
        user = request.user if request is not None else None
        return list(AttachmentSerializer(access.attachments_visible_to(user, ticket), many=True).data)

    def get_events(self, ticket: Ticket) -> list[dict[str, Any]]:
        if not self.context.get("with_events"):
            return []
        events = ticket.events.select_related("author").order_by("created_at", "id")
        if not access.may_see_internal(self.context["request"].user):
            events = events.filter(internal=False)
        return list(TicketEventSerializer(events, many=True).data)


class TicketCreateSerializer(serializers.Serializer[dict[str, Any]]):
    customer = serializers.UUIDField(
        required=False, help_text="Staff only; a customer's users open their own."
    )
    subject = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=20_000)
    category = serializers.ChoiceField(choices=Category.choices, default=Category.QUESTION)
    priority = serializers.ChoiceField(choices=Priority.choices, default=Priority.P3)
    asset = serializers.UUIDField(required=False, allow_null=True)


class CommentSerializer(serializers.Serializer[dict[str, Any]]):
    body = serializers.CharField(max_length=20_000)
    internal = serializers.BooleanField(default=False)


class TransitionSerializer(serializers.Serializer[dict[str, Any]]):
    status = serializers.ChoiceField(choices=Status.choices)


class AssignSerializer(serializers.Serializer[dict[str, Any]]):
    assignee = serializers.UUIDField(allow_null=True)


class PrioritySerializer(serializers.Serializer[dict[str, Any]]):
    priority = serializers.ChoiceField(choices=Priority.choices)


class DisputeSerializer(serializers.Serializer[dict[str, Any]]):
    reason = serializers.CharField(max_length=5000)
    line = serializers.IntegerField(required=False, allow_null=True)


class CreditSerializer(serializers.Serializer[dict[str, Any]]):
    amount = serializers.DecimalField(max_digits=16, decimal_places=2, min_value=0)
    reason = serializers.CharField(max_length=2000)


class AttachmentUploadSerializer(serializers.Serializer[dict[str, Any]]):
    file = serializers.FileField()
