"""The demo fleet `seed_demo` loads: sites, three asset models, assets with devices.

Idempotent like the rest of the demo. Devices get no token here: the simulator issues its
own when it starts (tokens are shown once and never stored).
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from fleet import windows
from fleet.models import (
    AlarmRule,
    Asset,
    AssetModel,
    Device,
    HealthRule,
    MaintenanceWindow,
    MetricDefinition,
    Resolution,
    Site,
    TelemetryRollup,
)
from fleet.services import metric
from portal.models import Customer

MODELS = {
    "aircomp-75": (
        "AirComp 75 screw compressor",
        "Fleetport Machines",
        30,
        [
            metric("run_hours", "Run hours", "h", "counter"),
            metric("energy_kwh", "Energy", "kWh", "counter"),
            metric("pressure_bar", "Outlet pressure", "bar", "gauge", "6.0", "8.5"),
            metric("temp_c", "Oil temperature", "°C", "gauge", "40", "95"),
        ],
    ),
    "frostline-200": (
        "Frostline 200 chiller",
        "Fleetport Machines",
        30,
        [
            metric("run_hours", "Run hours", "h", "counter"),
            metric("energy_kwh", "Energy", "kWh", "counter"),
            metric("supply_temp_c", "Supply temperature", "°C", "gauge", "-30", "-15"),
            metric("cop", "Coefficient of performance", "", "gauge", "2.0", "6.0"),
        ],
    ),
    "hydro-p40": (
        "Hydro P40 pump",
        "Fleetport Machines",
        30,
        [
            metric("cycles", "Pump cycles", "", "counter"),
            metric("run_hours", "Run hours", "h", "counter"),
            metric("flow_m3h", "Flow", "m³/h", "gauge", "10", "45"),
            metric("vibration_mm_s", "Vibration", "mm/s", "gauge", "0", "7.1"),
        ],
    ),
}

# model code -> [(name, metric, comparison, threshold, for seconds, severity, ticket priority)]
RULES = {
    "aircomp-75": [
        ("Oil overheating", "temp_c", "gt", "95", 60, "critical", "P1"),
        ("Low outlet pressure", "pressure_bar", "lt", "6.0", 120, "warning", ""),
    ],
    "frostline-200": [("Freezer too warm", "supply_temp_c", "gt", "-15", 120, "critical", "P1")],
    "hydro-p40": [("Excessive vibration", "vibration_mm_s", "gt", "7.1", 60, "warning", "P3")],
}

# model code -> [(name, metric, kind, comparison, limit, horizon h, lookback h, sensitivity, severity,
#                 ticket priority)]: docs/health.md
HealthSpec = tuple[str, str, str, str, str | None, int, int, str, str, str]
HEALTH_RULES: dict[str, list[HealthSpec]] = {
    "aircomp-75": [
        ("Oil temperature heading for 95 °C", "temp_c", "trend", "gt", "95", 48, 72, "3", "warning", "P3"),
        ("Outlet pressure unlike its normal", "pressure_bar", "anomaly", "gt", None, 48, 72, "5", "info", ""),
    ],
    "frostline-200": [
        ("Supply warming to −15 °C", "supply_temp_c", "trend", "gt", "-15", 24, 48, "3", "critical", "P2"),
    ],
    "hydro-p40": [
        ("Vibration heading for 7.1", "vibration_mm_s", "trend", "gt", "7.1", 48, 72, "3", "warning", "P3"),
        ("Vibration unlike its normal", "vibration_mm_s", "anomaly", "gt", None, 48, 72, "5", "info", ""),
    ],
}
# The demo asset whose oil temperature has been creeping up for three days, so `make run` shows
# a prediction (and its proactive ticket) from the start: hour rollups from 62 °C to ~84 °C.
DRIFTING = ("AC75-1002", "temp_c", 62.0, 0.3, 72)  # serial, metric, start, °C an hour, hours
RUN_HOURS_AT_START = 2400.0  # its run-hour counter when the drift began

# customer slug -> site name -> [(model code, serial, asset name)]
ASSETS = {
    "acme": {
        "Hamburg bakery": [
            ("aircomp-75", "AC75-1001", "Compressor line 1"),
            ("aircomp-75", "AC75-1002", "Compressor line 2"),
            ("frostline-200", "FL200-2001", "Dough chiller"),
        ],
        "Leipzig depot": [("hydro-p40", "HP40-3001", "Wash-water pump")],
    },
    "borealis": {
        "Chicago cold store": [
            ("frostline-200", "FL200-2101", "Freezer hall A chiller"),
            ("frostline-200", "FL200-2102", "Freezer hall B chiller"),
        ],
        "Joliet warehouse": [
            ("aircomp-75", "AC75-1101", "Dock compressor"),
            ("hydro-p40", "HP40-3101", "Sprinkler pump"),
        ],
    },
}
SITE_ADDRESSES = {
    "Hamburg bakery": "Am Sandtorkai 1\n20457 Hamburg",
    "Leipzig depot": "Messeallee 4\n04356 Leipzig",
    "Chicago cold store": "2200 S Halsted St\nChicago, IL",
    "Joliet warehouse": "1 Logistics Way\nJoliet, IL",
}


def seed(customers: dict[str, Customer]) -> dict[str, int]:
    models: dict[str, AssetModel] = {}
    for code, (name, maker, interval, metrics) in MODELS.items():
        model, _ = AssetModel.objects.update_or_create(
            code=code, defaults={"name": name, "manufacturer": maker, "heartbeat_interval_seconds": interval}
        )
        for spec in metrics:
            MetricDefinition.objects.update_or_create(asset_model=model, code=spec["code"], defaults=spec)
        for name, metric_code, comparison, threshold, for_seconds, severity, ticket in RULES[code]:
            AlarmRule.objects.update_or_create(
                asset_model=model,
                name=name,
                defaults={
                    "metric": metric_code,
                    "comparison": comparison,
                    "threshold": Decimal(threshold),
                    "for_seconds": for_seconds,
                    "severity": severity,
                    "ticket_priority": ticket,
                },
            )
        for (
            name,
            metric_code,
            kind,
            comparison,
            limit,
            horizon,
            lookback,
            sensitivity,
            severity,
            ticket,
        ) in HEALTH_RULES[code]:
            HealthRule.objects.update_or_create(
                asset_model=model,
                name=name,
                defaults={
                    "metric": metric_code, "kind": kind, "comparison": comparison,
                    "limit": Decimal(limit) if limit is not None else None, "horizon_hours": horizon,
                    "lookback_hours": lookback, "sensitivity": Decimal(sensitivity), "severity": severity,
                    "ticket_priority": ticket,
                },
            )  # fmt: skip
        models[code] = model
    for slug, sites in ASSETS.items():
        customer = customers[slug]
        for site_name, assets in sites.items():
            site, _ = Site.objects.update_or_create(
                customer=customer, name=site_name, defaults={"address": SITE_ADDRESSES[site_name]}
            )
            for model_code, serial, asset_name in assets:
                asset, _ = Asset.objects.update_or_create(
                    serial_number=serial,
                    defaults={
                        "customer": customer,
                        "site": site,
                        "model": models[model_code],
                        "name": asset_name,
                        "commissioned_on": date(2026, 1, 15),
                    },
                )
                Device.objects.get_or_create(
                    serial_number=f"GW-{serial}",
                    defaults={"customer": customer, "asset": asset, "firmware": "2.4.1"},
                )
    _seed_drift()
    _seed_window(customers["acme"])
    return {
        "sites": Site.objects.filter(customer__in=customers.values()).count(),
        "assets": Asset.objects.filter(customer__in=customers.values()).count(),
    }


WINDOW_TITLE = "Annual service of the compressors"


def _seed_window(customer: Customer) -> None:
    """An upcoming planned visit at Acme's first site, three days from now, 06:00–10:00 local:
    the calendar, the asset page and the overview have a window to show (planned through the
    service, so Acme's users are told as they would be)."""
    if MaintenanceWindow.objects.filter(customer=customer, title=WINDOW_TITLE).exists():
        return
    site = Site.objects.filter(customer=customer).order_by("name").first()
    if site is None:
        return
    local = timezone.now().astimezone(ZoneInfo(customer.time_zone)) + timedelta(days=3)
    start = local.replace(hour=6, minute=0, second=0, microsecond=0)
    windows.window_plan(
        actor=None, customer=customer, title=WINDOW_TITLE, site=site,
        starts_at=start, ends_at=start + timedelta(hours=4),
        reason="Filters, oil and a safety check; the machines stand still.",
    )  # fmt: skip


def _seed_drift() -> None:
    """Three days of hour rollups of the drifting asset, ending the hour before now (existing
    buckets are left alone), then its health evaluated once the seed commits: the prediction,
    its alarm and ticket are there before the first beat round."""
    serial, code, start, rate, hours = DRIFTING
    asset = Asset.objects.filter(serial_number=serial).first()
    if asset is None:
        return
    end = timezone.now().replace(minute=0, second=0, microsecond=0)
    rows = []
    for hour in range(hours):
        mean = start + rate * hour + 0.8 * math.sin(hour / 3.0)  # a little daily wobble
        bucket = end - timedelta(hours=hours - hour)
        # Its run hours too, advancing 0.8 h in each hour: the trend rule reads the buckets in
        # which the machine ran (docs/health.md, "Running peaks"), and once the simulator
        # reports run hours, buckets without them would count as idle and the trend be lost.
        run_hours = RUN_HOURS_AT_START + 0.8 * hour
        for metric_code, low, high, total in (
            (code, mean - 1.5, mean + 1.5, mean * 120),
            ("run_hours", run_hours, run_hours + 0.8, (run_hours + 0.4) * 120),
        ):
            rows.append(
                TelemetryRollup(
                    customer_id=asset.customer_id, asset=asset, metric=metric_code,
                    resolution=Resolution.HOUR, bucket=bucket, count=120, total=total,
                    minimum=low, maximum=high,
                )
            )  # fmt: skip
    TelemetryRollup.objects.bulk_create(rows, ignore_conflicts=True)

    def evaluate_drifting() -> None:
        from fleet.health import evaluate

        evaluate([asset.pk])

    transaction.on_commit(evaluate_drifting)
