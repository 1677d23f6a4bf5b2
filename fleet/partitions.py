"""Time partitions of raw heartbeats and minute rollups: made ahead and dropped when old.

pg_partman made the partitions at migrate time (fleet/migrations/0010) and makes the next ones
in `maintain`; `prune` drops whole partitions past their retention setting instead of
deleting rows. A customer whose TelemetryRetention keeps data longer keeps its rows: they
are copied to the table's `_retained` twin before the partition goes, and leave it when their
own window ends. docs/ingest.md, "Partitioned telemetry".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction

from fleet.models import TelemetryRetention


@dataclass(frozen=True)
class Partitioned:
    parent: str  # the table pg_partman manages
    column: str  # its partition key
    retained: str  # where a contract's longer-kept rows go
    setting: str  # the retention in days, a setting
    field: str  # the same for one customer, a TelemetryRetention field


RAW = Partitioned("fleet_heartbeat", "ts", "fleet_heartbeat_retained", "RAW_RETENTION_DAYS", "raw_days")
MINUTE = Partitioned(
    "fleet_telemetryrollup_minute",
    "bucket",
    "fleet_telemetryrollup_retained",
    "MINUTE_ROLLUP_RETENTION_DAYS",
    "minute_days",
)


def maintain() -> None:
    """Make the partitions due ahead of now (pg_partman's premake: a week of days, two months)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT partman.run_maintenance(p_analyze := false, p_jobmon := false)")


def partitions(table: Partitioned) -> list[tuple[str, datetime, datetime]]:
    """The partitions of `table` oldest first, with their bounds [start, end) (not the default)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.partition_tablename, i.child_start_time, i.child_end_time "
            "FROM partman.show_partitions(%s, 'ASC') p, "
            "partman.show_partition_info(p.partition_schemaname || '.' || p.partition_tablename) i",
            [f"public.{table.parent}"],
        )
        return list(cursor.fetchall())


def prune(table: Partitioned, *, now: datetime) -> list[str]:
    """Drop the partitions of `table` that end before its retention cutoff; returns their names.

    Rows of customers kept longer and still within their own window are copied to the
    retained table first; retained rows past their customer's window are deleted (a small
    table: only what contracts keep)."""
    cutoff = now - timedelta(days=getattr(settings, table.setting))
    keep = {
        str(customer): now - timedelta(days=days)
        for customer, days in TelemetryRetention.objects.values_list("customer_id", table.field)
        if now - timedelta(days=days) < cutoff
    }
    dropped = []
    with transaction.atomic(), connection.cursor() as cursor:
        # A table with deferred foreign key checks pending cannot be dropped: run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for name, _start, end in partitions(table):
            if end > cutoff:
                break
            if any(since < end for since in keep.values()):
                cursor.execute(
                    f"INSERT INTO {table.retained} SELECT p.* FROM {name} p "  # noqa: S608 - our tables
                    "JOIN unnest(%s::uuid[], %s::timestamptz[]) AS k(customer, since) "
                    f"ON p.customer_id = k.customer AND p.{table.column} >= k.since",
                    [list(keep), list(keep.values())],
                )
            cursor.execute(f"DROP TABLE {name}")
            dropped.append(name)
        cursor.execute(
            f"DELETE FROM {table.retained} r WHERE r.{table.column} < coalesce("  # noqa: S608 - our tables
            "(SELECT k.since FROM unnest(%s::uuid[], %s::timestamptz[]) AS k(customer, since) "
            "WHERE k.customer = r.customer_id), %s)",
            [list(keep), list(keep.values()), cutoff],
        )
    return dropped
