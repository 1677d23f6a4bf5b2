"""Support in the operators' admin: tickets are worked in the desk; here operators look and fix."""

from __future__ import annotations

from django.contrib import admin

from support.models import Attachment, Ticket, TicketEvent


class TicketEventInline(admin.TabularInline[TicketEvent, Ticket]):
    model = TicketEvent
    extra = 0
    fields = ("created_at", "kind", "author", "internal", "body")
    readonly_fields = ("created_at", "kind", "author", "internal", "body")
    can_delete = False


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin[Ticket]):
    list_display = [
        "number",
        "customer",
        "subject",
        "priority",
        "status",
        "sla_state",
        "assignee",
        "created_at",
    ]
    list_filter = ["status", "priority", "category", "source", "sla_state"]
    search_fields = ["number", "subject", "customer__name"]
    raw_id_fields = ["asset", "contract", "invoice", "invoice_line", "credit_note", "assignee", "created_by"]
    inlines = [TicketEventInline]


@admin.register(TicketEvent)
class TicketEventAdmin(admin.ModelAdmin[TicketEvent]):
    list_display = ["ticket", "kind", "author", "internal", "created_at"]
    list_filter = ["kind", "internal"]
    raw_id_fields = ["ticket", "author"]


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin[Attachment]):
    list_display = ["name", "ticket", "content_type", "size", "created_at"]
    raw_id_fields = ["ticket", "event", "uploaded_by"]
    readonly_fields = ["file"]
