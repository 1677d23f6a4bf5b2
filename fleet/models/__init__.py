"""The fleet: sites, the asset catalogue and its metrics, assets, devices, heartbeats, usage,
alarms, maintenance windows, health (one module each; import them from here).

Tenant-owned rows carry `customer` (children too) so every query and index can lead with it.
The asset catalogue (`AssetModel`, `MetricDefinition`) is the provider's and shared.
"""

from fleet.models.alarms import (
    ACTIVE_ALARM_STATES,
    Alarm,
    AlarmKind,
    AlarmRule,
    AlarmState,
    Comparison,
    Severity,
)
from fleet.models.assets import (
    Asset,
    AssetModel,
    AssetStatus,
    Device,
    DeviceCredential,
    MetricDefinition,
    MetricKind,
    Site,
    credential_valid_at,
)
from fleet.models.health import AssetHealth, AssetThreshold, HealthRule, HealthRuleKind, RiskLevel
from fleet.models.maintenance import (
    MaintenanceWindow,
    Recurrence,
    StatusExclusion,
    StopCause,
    WindowStatus,
)
from fleet.models.readings import (
    AssetStatusChange,
    FailedBatch,
    Heartbeat,
    HeartbeatStatus,
    HourlyUsage,
    ImplausibleReading,
    IngestInbox,
    Resolution,
    TelemetryRetention,
    TelemetryRollup,
)

__all__ = [
    "ACTIVE_ALARM_STATES",
    "Alarm",
    "AlarmKind",
    "AlarmRule",
    "AlarmState",
    "Asset",
    "AssetHealth",
    "AssetModel",
    "AssetStatus",
    "AssetStatusChange",
    "AssetThreshold",
    "Comparison",
    "Device",
    "DeviceCredential",
    "FailedBatch",
    "HealthRule",
    "HealthRuleKind",
    "Heartbeat",
    "HeartbeatStatus",
    "HourlyUsage",
    "ImplausibleReading",
    "IngestInbox",
    "MaintenanceWindow",
    "MetricDefinition",
    "MetricKind",
    "Recurrence",
    "Resolution",
    "RiskLevel",
    "Severity",
    "Site",
    "StatusExclusion",
    "StopCause",
    "TelemetryRetention",
    "TelemetryRollup",
    "WindowStatus",
    "credential_valid_at",
]
