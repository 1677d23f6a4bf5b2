"""The fleet in the operators' admin. Derived state (status, last values, usage) is read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from fleet import services
from fleet.models import (
    Alarm,
    AlarmRule,
    Asset,
    AssetHealth,
    AssetModel,
    AssetStatusChange,
    AssetThreshold,
    Device,
    DeviceCredential,
    FailedBatch,
    HealthRule,
    Heartbeat,
    HourlyUsage,
    ImplausibleReading,
    IngestInbox,
    MaintenanceWindow,
    MetricDefinition,
    Site,
    StatusExclusion,
    TelemetryRetention,
    TelemetryRollup,
)
from portal.admin_base import ReadOnlyAdmin


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin[Site]):
    list_display = ["name", "customer", "time_zone", "created_at"]
    list_filter = ["customer"]
    search_fields = ["name", "address"]


class MetricInline(admin.TabularInline[MetricDefinition, AssetModel]):
    model = MetricDefinition
    extra = 1


class AlarmRuleInline(admin.TabularInline[AlarmRule, AssetModel]):
    model = AlarmRule
    extra = 0


@admin.register(TelemetryRetention)
class TelemetryRetentionAdmin(admin.ModelAdmin[TelemetryRetention]):
    """An exceptional edit: a contract that keeps telemetry longer (docs/ingest.md)."""

    list_display = ["customer", "raw_days", "minute_days"]


@admin.register(AssetModel)
class AssetModelAdmin(admin.ModelAdmin[AssetModel]):
    list_display = ["name", "code", "manufacturer", "heartbeat_interval_seconds"]
    search_fields = ["name", "code"]
    inlines = [MetricInline, AlarmRuleInline]


@admin.register(AlarmRule)
class AlarmRuleAdmin(admin.ModelAdmin[AlarmRule]):
    list_display = [
        "name",
        "asset_model",
        "metric",
        "comparison",
        "threshold",
        "for_seconds",
        "severity",
        "is_active",
    ]
    list_filter = ["asset_model", "severity", "is_active"]


@admin.register(Alarm)
class AlarmAdmin(ReadOnlyAdmin):
    list_display = ["raised_at", "asset", "customer", "kind", "severity", "state", "message"]
    list_filter = ["state", "severity", "kind", "customer"]


@admin.register(AssetStatusChange)
class AssetStatusChangeAdmin(ReadOnlyAdmin):
    list_display = ["at", "asset", "customer", "previous", "status"]
    list_filter = ["status", "customer"]


@admin.register(MetricDefinition)
class MetricDefinitionAdmin(admin.ModelAdmin[MetricDefinition]):
    list_display = [
        "code", "label", "asset_model", "kind", "unit", "normal_min", "normal_max", "max_rate_per_hour",
    ]  # fmt: skip
    list_filter = ["asset_model", "kind"]


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin[Asset]):
    list_display = ["name", "serial_number", "customer", "site", "model", "status", "last_seen_at"]
    list_filter = ["status", "customer", "model"]
    search_fields = ["name", "serial_number"]
    readonly_fields = ["status", "status_changed_at", "last_seen_at", "last_values", "last_fault_code"]


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin[Device]):
    list_display = ["serial_number", "asset", "customer", "is_active", "firmware", "last_seq", "last_seen_at"]
    list_filter = ["is_active", "customer"]
    search_fields = ["serial_number", "asset__name"]
    readonly_fields = ["last_seq", "last_seen_at", "counter_state"]


@admin.register(DeviceCredential)
class DeviceCredentialAdmin(ReadOnlyAdmin):
    """Only the public prefix and dates: the token is never stored."""

    list_display = ["prefix", "device", "customer", "created_at", "expires_at", "revoked_at"]
    list_filter = ["customer"]
    exclude = ["token_hash"]


@admin.register(Heartbeat)
class HeartbeatAdmin(ReadOnlyAdmin):
    list_display = ["device", "seq", "ts", "status", "asset", "customer", "received_at"]
    list_filter = ["status", "customer"]
    show_full_result_count = False


@admin.register(HourlyUsage)
class HourlyUsageAdmin(ReadOnlyAdmin):
    list_display = ["asset", "metric", "hour", "quantity", "customer"]
    list_filter = ["metric", "customer"]


@admin.register(ImplausibleReading)
class ImplausibleReadingAdmin(ReadOnlyAdmin):
    list_display = ["ts", "asset", "metric", "seq", "value", "increment", "allowed", "status", "customer"]
    list_filter = ["status", "metric", "customer"]
    actions = ["accept", "reject"]

    def _decide(self, request: HttpRequest, queryset: Any, *, accept: bool) -> None:
        decided = 0
        for reading in queryset.filter(status=ImplausibleReading.Status.PENDING):
            services.implausible_reading_decide(reading=reading, accept=accept, actor=request.user)  # type: ignore[arg-type]
            decided += 1
        self.message_user(request, f"{decided} pending reading(s) {'accepted' if accept else 'rejected'}.")

    @admin.action(description="Accept: bill their increments")
    def accept(self, request: HttpRequest, queryset: Any) -> None:
        self._decide(request, queryset, accept=True)

    @admin.action(description="Reject: never bill them")
    def reject(self, request: HttpRequest, queryset: Any) -> None:
        self._decide(request, queryset, accept=False)


@admin.register(IngestInbox)
class IngestInboxAdmin(ReadOnlyAdmin):
    list_display = ["id", "device_id", "count", "received_at", "attempts"]


@admin.register(FailedBatch)
class FailedBatchAdmin(ReadOnlyAdmin):
    list_display = ["id", "device_id", "created_at", "received_at", "retried_at"]
    readonly_fields = ["error"]
    actions = ["retry"]

    @admin.action(description="Put back into the ingest inbox")
    def retry(self, request: HttpRequest, queryset: Any) -> None:
        for batch in queryset.filter(retried_at__isnull=True):
            services.failed_batch_retry(batch=batch)
        self.message_user(request, "Put back; a worker stores them now.")


@admin.register(TelemetryRollup)
class TelemetryRollupAdmin(ReadOnlyAdmin):
    list_display = ["asset", "metric", "resolution", "bucket", "count", "minimum", "maximum", "customer"]
    list_filter = ["resolution", "metric", "customer"]
    show_full_result_count = False


@admin.register(HealthRule)
class HealthRuleAdmin(admin.ModelAdmin[HealthRule]):
    list_display = ["name", "asset_model", "metric", "kind", "limit", "horizon_hours", "is_active"]
    list_filter = ["kind", "asset_model"]


@admin.register(AssetHealth)
class AssetHealthAdmin(ReadOnlyAdmin):
    list_display = ["asset", "customer", "score", "risk", "evaluated_at"]


@admin.register(AssetThreshold)
class AssetThresholdAdmin(ReadOnlyAdmin):
    """Look only: customers set these on the asset page, within the model's limits (audited)."""

    list_display = ["asset", "rule", "threshold", "set_by", "updated_at"]


@admin.register(MaintenanceWindow)
class MaintenanceWindowAdmin(ReadOnlyAdmin):
    """Look only: windows are planned on the portal's pages and the API (customers are told)."""

    list_display = ["title", "customer", "starts_at", "ends_at", "status", "is_emergency"]


@admin.register(StatusExclusion)
class StatusExclusionAdmin(ReadOnlyAdmin):
    list_display = ["asset", "customer", "starts_at", "ends_at", "cause", "reason"]
