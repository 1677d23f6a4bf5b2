"""A covering index on fleet_hourlyusage for the invoice run's usage sums.

`billing.metering.quantities` sums the hourly usage of each covered asset over a month: per
asset, an index range on (asset_id, hour), and `metric` and `quantity` to group and sum. With
only the existing indexes every one of those rows is a heap fetch, and the ingest worker
writes the rows hour by hour for all assets, so one asset's month lies on ~750 different
pages: the S4 benchmark (bench/invoice_run.py, 10,000 contracts, 15 M rows) spent 57 of its
~95 s there. With (asset_id, hour) INCLUDE (metric, quantity) the same sums are an index-only
scan of ~11 consecutive index pages per asset (9.5 s). The cost: ~65 bytes per usage row
(964 MB for 15 M rows) and one more index to maintain on every usage upsert;
docs/performance.md (S4) has the figures.

The index is billing's (it serves the billing query only), so it lives here and not in
fleet's model state; it is built CONCURRENTLY so that ingest keeps writing while it is
built.
"""

from typing import Any

from django.db import migrations

INDEX = "usage_asset_hour_covering"


def create_index(apps: Any, schema_editor: Any) -> None:
    schema_editor.execute(
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {INDEX} ON fleet_hourlyusage (asset_id, hour)"
        " INCLUDE (metric, quantity)"
    )


def drop_index(apps: Any, schema_editor: Any) -> None:
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("billing", "0001_initial"),
        ("fleet", "0005_telemetry_rollups"),
    ]

    operations = [migrations.RunPython(create_index, drop_index, elidable=False)]
