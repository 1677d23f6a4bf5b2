"""Billing in the operators' admin. Invoices and their lines are written by the invoice run and
the services; a finalized invoice cannot be changed or deleted here either."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from billing.models import (
    Contract,
    ContractAsset,
    ContractPriceOverride,
    CreditNote,
    Invoice,
    InvoiceLine,
    InvoiceReminder,
    InvoiceRun,
    InvoiceRunChunk,
    InvoiceStatus,
    Payment,
    Plan,
    PlanRevision,
    PriceComponent,
)
from portal.admin_base import ReadOnlyAdmin


class PriceComponentInline(admin.TabularInline[PriceComponent, Plan]):
    model = PriceComponent
    extra = 0


@admin.register(Plan)
class PlanAdmin(admin.ModelAdmin[Plan]):
    list_display = ["code", "name", "currency", "period_fee", "minimum_commitment", "is_active"]
    search_fields = ["code", "name"]
    inlines = [PriceComponentInline]


@admin.register(PriceComponent)
class PriceComponentAdmin(admin.ModelAdmin[PriceComponent]):
    list_display = ["plan", "metric", "charge_model", "unit_price", "included_units"]
    list_filter = ["charge_model"]


class ContractAssetInline(admin.TabularInline[ContractAsset, Contract]):
    model = ContractAsset
    extra = 0
    raw_id_fields = ["asset"]


class ContractPriceOverrideInline(admin.TabularInline[ContractPriceOverride, Contract]):
    model = ContractPriceOverride
    extra = 0


@admin.register(Contract)
class ContractAdmin(admin.ModelAdmin[Contract]):
    list_display = ["number", "customer", "plan", "status", "start_date", "end_date"]
    list_filter = ["status", "plan"]
    search_fields = ["number", "customer__name"]
    inlines = [ContractAssetInline, ContractPriceOverrideInline]


@admin.register(ContractPriceOverride)
class ContractPriceOverrideAdmin(admin.ModelAdmin[ContractPriceOverride]):
    list_display = ["contract", "metric", "charge_model", "unit_price", "note"]


@admin.register(PlanRevision)
class PlanRevisionAdmin(ReadOnlyAdmin):
    list_display = ["plan", "version", "replaced_at", "replaced_by"]


@admin.register(ContractAsset)
class ContractAssetAdmin(admin.ModelAdmin[ContractAsset]):
    list_display = ["contract", "asset", "covered_from", "covered_until"]
    raw_id_fields = ["asset", "contract"]


@admin.register(InvoiceRun)
class InvoiceRunAdmin(ReadOnlyAdmin):
    list_display = ["period", "status", "processed", "total", "created_at", "finished_at"]


@admin.register(InvoiceRunChunk)
class InvoiceRunChunkAdmin(ReadOnlyAdmin):
    """Which worker billed which part of a run (docs/billing.md, "The invoice run")."""

    list_display = ["run", "index", "size", "processed", "worker", "done_at"]
    list_filter = ["run__period"]


class InvoiceLineInline(admin.TabularInline[InvoiceLine, Invoice]):
    model = InvoiceLine
    extra = 0
    can_delete = False
    readonly_fields = [
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

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin[Invoice]):
    """Look only: drafts come from runs, states change through finance's pages and the API."""

    list_display = ["__str__", "customer", "contract", "period", "status", "total", "currency"]
    list_filter = ["status", "period"]
    search_fields = ["number", "customer__name", "contract__number"]
    inlines = [InvoiceLineInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is not None and obj.status == InvoiceStatus.DRAFT


@admin.register(InvoiceLine)
class InvoiceLineAdmin(ReadOnlyAdmin):
    list_display = ["invoice", "position", "kind", "description", "amount"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CreditNote)
class CreditNoteAdmin(ReadOnlyAdmin):
    list_display = ["number", "invoice", "customer", "total", "currency", "created_at"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    """Look only: payments are recorded on the invoice page and the API (audited)."""

    list_display = ["invoice", "customer", "received_on", "amount", "currency", "method", "reference"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(InvoiceReminder)
class InvoiceReminderAdmin(ReadOnlyAdmin):
    list_display = ["invoice", "days_overdue", "sent_to", "created_at"]
