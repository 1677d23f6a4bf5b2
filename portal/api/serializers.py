from __future__ import annotations

from typing import Any

from rest_framework import serializers

from portal.models import Customer, User
from portal.roles import ACCESS, Role


class CustomerSerializer(serializers.ModelSerializer[Customer]):
    class Meta:
        model = Customer
        fields = [
            "id",
            "name",
            "slug",
            "currency",
            "time_zone",
            "tax_rate",
            "billing_email",
            "is_active",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]


class UserSerializer(serializers.ModelSerializer[User]):
    customer: serializers.PrimaryKeyRelatedField[Customer] = serializers.PrimaryKeyRelatedField(
        read_only=True
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


class UserUpdateSerializer(serializers.Serializer[Any]):
    role = serializers.ChoiceField(choices=Role.choices, required=False)
    is_active = serializers.BooleanField(required=False)


class MeSerializer(serializers.ModelSerializer[User]):
    customer = CustomerSerializer(read_only=True)
    capabilities = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "email", "full_name", "role", "customer", "time_zone", "capabilities"]
        read_only_fields = fields

    def get_capabilities(self, obj: User) -> list[str]:
        return sorted(ACCESS[Role(obj.role)]) if obj.is_active else []
