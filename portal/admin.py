"""The Django admin, for operators only, with every model registered."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth import forms as auth_forms
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import HttpRequest

from portal import services
from portal.admin_base import ReadOnlyAdmin
from portal.models import ApiToken, AuditEntry, Customer, DocumentSequence, OutboxMessage, User


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin[Customer]):
    list_display = ["name", "slug", "currency", "time_zone", "tax_rate", "country", "vat_id", "is_active"]
    list_filter = ["is_active", "currency", "tax_category", "country"]
    search_fields = ["name", "slug", "legal_name", "vat_id", "billing_email"]
    prepopulated_fields = {"slug": ["name"]}
    fieldsets = (
        (None, {"fields": ("name", "slug", "is_active")}),
        ("Account", {"fields": ("currency", "time_zone", "locale")}),
        (
            "Billing identity",
            {
                "description": "What invoices print for the buyer (docs/billing.md, “Billing identity”).",
                "fields": (
                    "legal_name", "address_line1", "address_line2", "postal_code", "city", "country",
                    "vat_id", "tax_rate", "tax_category", "tax_exemption_reason", "billing_email",
                ),
            },
        ),
    )  # fmt: skip

    def save_model(self, request: HttpRequest, obj: Customer, form: Any, change: bool) -> None:
        """Through the services, as the API does, so the admin's changes are audited too."""
        assert isinstance(request.user, User)
        values = {name: form.cleaned_data[name] for name in form.fields if name in form.cleaned_data}
        if change:
            stored = Customer.objects.get(pk=obj.pk)  # `obj` already holds the form's values
            services.customer_update(actor=request.user, customer=stored, **values)
        else:
            created = services.customer_create(actor=request.user, **values)
            obj.pk, obj._state = created.pk, created._state  # the admin logs and redirects with `obj`


class AdminUserCreationForm(auth_forms.AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "role", "customer")


class AdminUserChangeForm(auth_forms.UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    add_form = AdminUserCreationForm
    form = AdminUserChangeForm
    ordering = ["email"]
    list_display = ["email", "full_name", "role", "customer", "is_active", "last_login"]
    list_filter = ["role", "is_active", "customer"]
    search_fields = ["email", "full_name"]
    readonly_fields = ["last_login", "date_joined"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Person", {"fields": ("full_name", "time_zone", "locale")}),
        ("Access", {"fields": ("role", "customer", "is_active", "is_superuser")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "role", "customer", "usable_password", "password1", "password2"),
            },
        ),
    )
    filter_horizontal = ()


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin[AuditEntry]):
    list_display = ["created_at", "actor_label", "action", "target_repr", "customer"]
    list_filter = ["action", "customer"]
    search_fields = ["actor_label", "action", "target_repr"]
    date_hierarchy = "created_at"

    # The trail is append-only, in the admin too.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin[ApiToken]):
    """Prefixes and dates only: the token is never stored."""

    list_display = ["prefix", "user", "customer", "name", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["customer"]
    exclude = ["token_hash"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(DocumentSequence)
class DocumentSequenceAdmin(ReadOnlyAdmin):
    """Numbers are taken by `portal.numbering` only; a deleted row would reuse numbers."""

    list_display = ["series", "year", "last_number"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(OutboxMessage)
class OutboxMessageAdmin(ReadOnlyAdmin):
    """Tasks committed but not yet taken by the broker (`portal.outbox`): normally empty or a
    second old; rows that stay show why in `last_error`."""

    list_display = ["id", "task", "created_at", "due_at", "attempts", "last_error"]
    list_filter = ["task"]
