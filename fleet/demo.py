"""The demo fleet `seed_demo` loads: sites, three asset models, assets with devices.

Idempotent like the rest of the demo. Devices get no token here: the simulator issues its
own when it starts (tokens are shown once and never stored).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from fleet.models import AlarmRule, Asset, AssetModel, Device, MetricDefinition, Site
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
    return {
        "sites": Site.objects.filter(customer__in=customers.values()).count(),
        "assets": Asset.objects.filter(customer__in=customers.values()).count(),
    }
