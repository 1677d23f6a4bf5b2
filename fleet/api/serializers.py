from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import serializers

from fleet.models import (
    Alarm,
    AlarmRule,
    Asset,
    AssetModel,
    AssetStatusChange,
    Device,
    Heartbeat,
    MetricDefinition,
    Site,
)
from portal.validation import validate_day, validate_moment


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


class MetricSerializer(serializers.ModelSerializer[MetricDefinition]):
    class Meta:
        model = MetricDefinition
        fields = ["code", "label", "unit", "kind", "normal_min", "normal_max", "max_rate_per_hour"]


class AlarmRuleSerializer(serializers.ModelSerializer[AlarmRule]):
    class Meta:
        model = AlarmRule
        fields = [
            "id", "name", "metric", "comparison", "threshold", "for_seconds", "severity", "is_active",
            "ticket_priority",
        ]  # fmt: skip
        read_only_fields = ["id"]


class AssetModelSerializer(serializers.ModelSerializer[AssetModel]):
    metrics = MetricSerializer(many=True)
    alarm_rules = serializers.SerializerMethodField()

    class Meta:
        model = AssetModel
        fields = [
            "id", "code", "name", "manufacturer", "heartbeat_interval_seconds", "description",
            "metrics", "alarm_rules",
        ]  # fmt: skip
        read_only_fields = ["id"]

    def get_alarm_rules(self, model: AssetModel) -> list[dict[str, Any]]:
        return list(AlarmRuleSerializer(model.alarm_rules.all(), many=True).data)

    def validate_metrics(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        codes = [m["code"] for m in value]
        if len(codes) != len(set(codes)):
            raise serializers.ValidationError("Metric codes must be unique within a model.")
        return value


class AssetModelCreateSerializer(AssetModelSerializer):
    alarm_rules = AlarmRuleSerializer(many=True, required=False)  # type: ignore[assignment]

    def validate(self, data: dict[str, Any]) -> dict[str, Any]:
        codes = {m["code"] for m in data.get("metrics", [])}
        for rule in data.get("alarm_rules", []):
            if rule["metric"] not in codes:
                raise serializers.ValidationError(
                    {"alarm_rules": [f"{rule['metric']!r} is not a metric of this model."]}
                )
        return data


class AssetSerializer(serializers.ModelSerializer[Asset]):
    site_name = serializers.CharField(source="site.name", read_only=True)
    model_code = serializers.CharField(source="model.code", read_only=True)

    class Meta:
        model = Asset
        fields = [
            "id", "customer", "site", "site_name", "model", "model_code", "serial_number", "name",
            "commissioned_on", "decommissioned_at", "status", "status_changed_at", "last_seen_at",
            "last_values", "last_fault_code",
        ]  # fmt: skip
        read_only_fields = fields


class AssetCreateSerializer(serializers.Serializer[Asset]):
    site = serializers.UUIDField()
    model = serializers.UUIDField()
    serial_number = serializers.CharField(max_length=100)
    name = serializers.CharField(max_length=200)
    commissioned_on = serializers.DateField(
        required=False, allow_null=True, default=None, validators=[validate_day]
    )


class HeartbeatSerializer(serializers.ModelSerializer[Heartbeat]):
    class Meta:
        model = Heartbeat
        fields = ["seq", "ts", "received_at", "status", "fault_code", "metrics", "device"]
        read_only_fields = fields


class DeviceSerializer(serializers.ModelSerializer[Device]):
    credential_prefixes = serializers.SerializerMethodField()

    class Meta:
        model = Device
        fields = [
            "id", "customer", "asset", "serial_number", "firmware", "is_active", "installed_at", "removed_at",
            "last_seq", "last_seen_at", "rate_limit_per_minute", "credential_prefixes",
        ]  # fmt: skip
        read_only_fields = fields

    def get_credential_prefixes(self, device: Device) -> list[str]:
        """The public prefixes of the device's usable tokens (never the tokens)."""
        now = timezone.now()
        return [c.prefix for c in device.credentials.all() if c.is_valid_at(now)]


class DeviceCreateSerializer(serializers.Serializer[Device]):
    asset = serializers.UUIDField()
    serial_number = serializers.CharField(max_length=100)
    firmware = serializers.CharField(max_length=60, required=False, allow_blank=True, default="")


class DeviceTokenSerializer(serializers.Serializer[Any]):
    device = DeviceSerializer()
    token = serializers.CharField(help_text="Shown this once. Send as `Authorization: Device <token>`.")


class RotateSerializer(serializers.Serializer[Any]):
    overlap_seconds = serializers.IntegerField(
        min_value=0,
        max_value=7 * 24 * 3600,
        required=False,
        help_text="How long the old token keeps working.",
    )


class UsageQuerySerializer(serializers.Serializer[Any]):
    metric = serializers.CharField(max_length=60)
    start = serializers.DateTimeField(required=False, validators=[validate_moment])  # renamed to "from" below
    to = serializers.DateTimeField(required=False, validators=[validate_moment])
    resolution = serializers.ChoiceField(choices=["hour", "day", "month"], default="hour")


class UsagePointSerializer(serializers.Serializer[Any]):
    period = serializers.DateTimeField()
    quantity = serializers.DecimalField(max_digits=24, decimal_places=6)


class UsageSeriesSerializer(serializers.Serializer[Any]):
    metric = serializers.CharField()
    unit = serializers.CharField()
    resolution = serializers.CharField()
    time_zone = serializers.CharField()
    total = serializers.DecimalField(max_digits=24, decimal_places=6)
    points = UsagePointSerializer(many=True)


class AlarmSerializer(serializers.ModelSerializer[Alarm]):
    asset_name = serializers.CharField(source="asset.name", read_only=True)
    # null until someone acknowledges or clears it (the schema says so: allow_null).
    acknowledged_by = serializers.EmailField(
        source="acknowledged_by.email", read_only=True, default=None, allow_null=True
    )
    cleared_by = serializers.EmailField(
        source="cleared_by.email", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = Alarm
        fields = [
            "id", "customer", "asset", "asset_name", "rule", "kind", "severity", "state", "message", "value",
            "raised_at", "acknowledged_at", "acknowledged_by", "cleared_at", "cleared_by", "cleared_reason",
        ]  # fmt: skip
        read_only_fields = fields


class StatusChangeSerializer(serializers.ModelSerializer[AssetStatusChange]):
    class Meta:
        model = AssetStatusChange
        fields = ["at", "previous", "status"]
        read_only_fields = fields


class TelemetryQuerySerializer(serializers.Serializer[Any]):
    metric = serializers.CharField(max_length=60)
    start = serializers.DateTimeField(required=False, validators=[validate_moment])  # renamed to "from" below
    to = serializers.DateTimeField(required=False, validators=[validate_moment])
    resolution = serializers.ChoiceField(choices=["raw", "minute", "hour", "day"], required=False)


class TelemetryPointSerializer(serializers.Serializer[Any]):
    t = serializers.DateTimeField()
    value = serializers.FloatField(required=False, help_text="raw only")
    min = serializers.FloatField(required=False)
    avg = serializers.FloatField(required=False)
    max = serializers.FloatField(required=False)
    count = serializers.IntegerField(required=False)


class TelemetrySeriesSerializer(serializers.Serializer[Any]):
    metric = serializers.CharField()
    resolution = serializers.CharField()
    start = serializers.DateTimeField()  # renamed to "from" below
    to = serializers.DateTimeField()
    points = TelemetryPointSerializer(many=True)


# `from` is a Python keyword: rename the declared fields so requests, errors and answers say "from".
for _serializer in (UsageQuerySerializer, TelemetryQuerySerializer, TelemetrySeriesSerializer):
    _serializer._declared_fields["from"] = _serializer._declared_fields.pop("start")


class TelemetryExportQuerySerializer(TelemetryQuerySerializer):
    metric = serializers.CharField(max_length=60, required=False)


def telemetry_series_data(series: dict[str, Any]) -> dict[str, Any]:
    """`TelemetrySeriesSerializer(series).data`, the same keys in the same order and the same
    values, without a serializer per point: a 24-hour chart has up to 1,440 points, and DRF's
    per-field walk over them took three quarters of the request (docs/performance.md, S5).
    The serializer stays the schema's; tests/fleet/test_telemetry.py holds the two equal."""
    moment = serializers.DateTimeField().to_representation  # the user's zone, ISO 8601, "Z" for UTC
    points: list[dict[str, Any]]
    if series["resolution"] == "raw":
        points = [{"t": moment(p["t"]), "value": float(p["value"])} for p in series["points"]]
    else:
        points = [
            {"t": moment(p["t"]), "min": float(p["min"]), "avg": float(p["avg"]), "max": float(p["max"]),
             "count": int(p["count"])}
            for p in series["points"]
        ]  # fmt: skip
    # The declared order, "from" last (renamed above).
    return {
        "metric": str(series["metric"]),
        "resolution": str(series["resolution"]),
        "to": moment(series["to"]),
        "points": points,
        "from": moment(series["from"]),
    }


class SiteUpdateSerializer(serializers.ModelSerializer[Site]):
    class Meta:
        model = Site
        fields = ["name", "address", "time_zone"]


class AssetUpdateSerializer(serializers.ModelSerializer[Asset]):
    site = serializers.UUIDField(required=False)

    class Meta:
        model = Asset
        fields = ["site", "name", "commissioned_on", "decommissioned_at"]
        extra_kwargs = {
            "commissioned_on": {"validators": [validate_day]},
            "decommissioned_at": {"validators": [validate_moment]},
        }
