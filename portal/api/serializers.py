from __future__ import annotations

from typing import Any

from django_countries.serializers import CountryFieldMixin
from rest_framework import serializers

from portal.models import ApiToken, Customer, User
from portal.roles import ACCESS, Role


class CustomerSerializer(CountryFieldMixin, serializers.ModelSerializer[Customer]):
    """A customer with its billing identity (docs/billing.md, "Billing identity"). Operators set
    every field; finance the identity fields and `tax_rate` only (any other changed: 403)."""

    class Meta:
        model = Customer
        fields = [
            "id",
            "name",
            "slug",
            "currency",
            "time_zone",
            "tax_rate",
            "is_active",
            "created_at",
            # The billing identity: what invoices print for the buyer.
            "legal_name",
            "address_line1",
            "address_line2",
            "postal_code",
            "city",
            "country",
            "vat_id",
            "tax_category",
            "tax_exemption_reason",
            "billing_email",
            "locale",
        ]
        read_only_fields = ["id", "created_at"]
        extra_kwargs = {
            "tax_rate": {"help_text": "A fraction: 0.1900 is 19 %, 0.0625 is 6.25 %."},
            "country": {"help_text": "ISO 3166-1 alpha-2, e.g. DE; empty when not known."},
            "vat_id": {
                "help_text": "With its country prefix, e.g. DE136695976; checked by its country's rules "
                "(check digit, length) and stored in its compact form."
            },
            "locale": {"help_text": "A BCP 47 tag Babel knows, e.g. de-DE: how its invoices write figures."},
        }


class UserSerializer(serializers.ModelSerializer[User]):
    customer: serializers.PrimaryKeyRelatedField[Customer] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="null for provider staff"
    )

    class Meta:
        model = User
        fields = [
            "id",
            "email",
            "full_name",
            "role",
            "customer",
            "time_zone",
            "locale",
            "is_active",
            "last_login",
            "date_joined",
        ]
        read_only_fields = fields


class UserInviteSerializer(serializers.Serializer[Any]):
    email = serializers.EmailField()
    full_name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    role = serializers.ChoiceField(choices=Role.choices)
    customer = serializers.UUIDField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Operators only; customer admins invite into their own customer.",
    )


class InvitationSerializer(serializers.Serializer[Any]):
    """A customer admin's answer to an invitation: the same whether or not the address has an
    account outside their customer (docs/security.md, "Invitations")."""

    email = serializers.EmailField()
    full_name = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)
    detail = serializers.CharField(help_text="If the address can be invited, an invitation is on its way.")


class UserUpdateSerializer(serializers.Serializer[Any]):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    is_active = serializers.BooleanField(required=False)


class MeSerializer(serializers.ModelSerializer[User]):
    customer = CustomerSerializer(read_only=True, allow_null=True, help_text="null for provider staff")
    capabilities = serializers.SerializerMethodField()
    display_locale = serializers.CharField(
        read_only=True, help_text="The locale figures are written in: the user's, else the customer's."
    )

    class Meta:
        model = User
        fields = [
            "id", "email", "full_name", "role", "customer", "time_zone", "locale", "display_locale",
            "capabilities",
        ]  # fmt: skip
        read_only_fields = fields

    def get_capabilities(self, obj: User) -> list[str]:
        return sorted(ACCESS[Role(obj.role)]) if obj.is_active else []


class TokenRequestSerializer(serializers.Serializer[Any]):
    email = serializers.EmailField()
    password = serializers.CharField(trim_whitespace=False, write_only=True)
    name = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)


class ErrorSerializer(serializers.Serializer[Any]):
    """An error answer other than a 400 (portal/api/exceptions.py); the schema's `Error`."""

    detail = serializers.CharField()

    class Meta:
        ref_name = "Error"


class TokenResponseSerializer(serializers.Serializer[Any]):
    token = serializers.CharField(help_text="Shown once; send as `Authorization: Token <token>`.")


class ApiTokenSerializer(serializers.ModelSerializer[ApiToken]):
    user = serializers.EmailField(source="user.email", read_only=True)

    class Meta:
        model = ApiToken
        fields = ["id", "user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = fields
