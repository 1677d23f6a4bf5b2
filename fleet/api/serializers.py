from __future__ import annotations

from rest_framework import serializers

from fleet.models import Site


class SiteSerializer(serializers.ModelSerializer[Site]):
    class Meta:
        model = Site
        fields = ["id", "customer", "name", "address", "time_zone", "created_at"]
        read_only_fields = ["id", "created_at"]


class SiteCreateSerializer(serializers.Serializer[Site]):
    customer = serializers.UUIDField()
    name = serializers.CharField(max_length=200)
    address = serializers.CharField(required=False, allow_blank=True, default="")
    time_zone = serializers.CharField(required=False, allow_blank=True, default="", max_length=64)
