"""The fleet: sites, the asset catalogue and its metrics, assets, devices, heartbeats, usage,
alarms (one module each for assets, readings and alarms; import them from here).

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
from fleet.models.readings import (
    AssetStatusChange,
    FailedBatch,
    Heartbeat,
    HeartbeatStatus,
    HourlyUsage,
    ImplausibleReading,
    IngestInbox,
    Resolution,
    TelemetryRollup,
)

__all__ = [
    "ACTIVE_ALARM_STATES",
    "Alarm",
    "AlarmKind",
    "AlarmRule",
    "AlarmState",
    "Asset",
    "AssetModel",
    "AssetStatus",
    "AssetStatusChange",
    "Comparison",
    "Device",
    "DeviceCredential",
    "FailedBatch",
    "Heartbeat",
    "HeartbeatStatus",
    "HourlyUsage",
    "ImplausibleReading",
    "IngestInbox",
    "MetricDefinition",
    "MetricKind",
    "Resolution",
    "Severity",
    "Site",
    "TelemetryRollup",
    "credential_valid_at",
]
