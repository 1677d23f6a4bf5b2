"""Raw heartbeats and minute rollups partitioned by time, managed by pg_partman.

`fleet_heartbeat` becomes a table partitioned by day on `ts`; `fleet_telemetryrollup` one
partitioned by `resolution`, whose minute partition is partitioned by month on `bucket` (hour
and day rollups stay in one plain partition). pg_partman makes the partitions (from the oldest
row's day or month, and ahead of now); `fleet.telemetry_partitions` keeps making them and drops
the old ones (fleet/partitions.py).

The conversion is a bounded pause, not online: in this migration's transaction each table is
renamed, a partitioned one made in its place, the rows copied over with one INSERT … SELECT,
the old table dropped, and its indexes and constraints made again on the new one (after the
copy, which is faster than maintaining them row by row). Raw heartbeats and rollups can be
neither read nor written meanwhile; devices are still answered 202, their heartbeats wait in
the inbox and are stored when the migration commits. docs/ingest.md, "Partitioned telemetry",
gives the measured rate to size the pause with.

A unique constraint on a partitioned table must include the partition key: (device, seq)
becomes (device, seq, ts), and the primary keys (id, ts) and (id, resolution, bucket).
pg_partman must be installable (CREATE EXTENSION needs a superuser: see docs/ingest.md).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _definitions(cursor, table: str, skip: set[str]) -> list[str]:
    """The statements that make `table`'s unique and foreign key constraints and its other
    indexes again (on a table of the same name), but those named in `skip` and the primary key."""
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype IN ('u', 'f')",
        [table],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
        "WHERE x.indrelid = %s::regclass AND NOT EXISTS "
        "(SELECT 1 FROM pg_constraint c WHERE c.conindid = i.oid AND c.conrelid = x.indrelid)",
        [table],
    )
    indexes = cursor.fetchall()
    return [
        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'
        for name, definition in constraints
        if name not in skip
    ] + [definition for name, definition in indexes if name not in skip]


def _convert(cursor, table: str, partition_by: str, primary_key: str, definitions: list[str]) -> None:
    """Rename `table` to `<table>_old` and make a copy of it in its place, partitioned by
    `partition_by` (or plain if empty): columns, defaults, NOT NULL and check constraints and
    the primary key, no rows yet."""
    cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_old")
    cursor.execute(f"ALTER TABLE {table}_old RENAME CONSTRAINT {table}_pkey TO {table}_old_pkey")
    cursor.execute(
        f"CREATE TABLE {table} (LIKE {table}_old INCLUDING DEFAULTS INCLUDING CONSTRAINTS) {partition_by}"
    )
    cursor.execute(f"ALTER TABLE {table} ALTER id DROP DEFAULT")  # its own sequence, after the copy
    cursor.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({primary_key})")


def _manage(cursor, parent: str, column: str, interval: str, premake: int, source: str) -> None:
    """Hand `parent` to pg_partman: partitions of `interval` from the oldest row of `source`,
    or INGEST_MAX_AGE_DAYS back (where late heartbeats land), to `premake` ahead, made ahead
    even when no rows arrive."""
    unit = "day" if interval == "1 day" else "month"
    cursor.execute(
        f"SELECT date_trunc('{unit}', least(min({column}), now() - make_interval(days => %s)), "  # noqa: S608
        f"'UTC')::text FROM {source}",
        [settings.INGEST_MAX_AGE_DAYS],
    )
    (start,) = cursor.fetchone()
    cursor.execute(
        "SELECT partman.create_parent(%s, %s, 'native', %s, p_premake := %s, p_start_partition := %s, "
        "p_jobmon := false)",
        [f"public.{parent}", column, interval, premake, start],
    )
    cursor.execute(
        "UPDATE partman.part_config SET infinite_time_partitions = true WHERE parent_table = %s",
        [f"public.{parent}"],
    )


def _unmanage(cursor, parent: str) -> None:
    cursor.execute("DELETE FROM partman.part_config WHERE parent_table = %s", [f"public.{parent}"])
    cursor.execute(f"DROP TABLE IF EXISTS partman.template_public_{parent}")


def _copy_and_finish(cursor, table: str, definitions: list[str]) -> None:
    """Copy the rows over, drop the old table, give `id` a sequence that goes on from the old
    table's, and make the constraints and indexes again."""
    cursor.execute(f"INSERT INTO {table} SELECT * FROM {table}_old")  # noqa: S608 - our names
    cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table}_old")  # noqa: S608 - our names
    (last,) = cursor.fetchone()
    cursor.execute(f"DROP TABLE {table}_old")
    cursor.execute(f"CREATE SEQUENCE {table}_id_seq OWNED BY {table}.id")
    cursor.execute(f"ALTER TABLE {table} ALTER id SET DEFAULT nextval('{table}_id_seq')")
    cursor.execute("SELECT setval(%s, %s, %s)", [f"{table}_id_seq", max(last, 1), last > 0])
    for statement in definitions:
        cursor.execute(statement)


HEARTBEAT, ROLLUP = "fleet_heartbeat", "fleet_telemetryrollup"
UNIQUE_SEQ = "ALTER TABLE fleet_heartbeat ADD CONSTRAINT heartbeat_once_per_device_seq{} UNIQUE ({})"


def partition(apps, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("CREATE SCHEMA IF NOT EXISTS partman")
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_partman SCHEMA partman")

        definitions = _definitions(cursor, HEARTBEAT, skip={"heartbeat_once_per_device_seq"})
        _convert(cursor, HEARTBEAT, "PARTITION BY RANGE (ts)", "id, ts", definitions)
        _manage(cursor, HEARTBEAT, "ts", "1 day", 7, f"{HEARTBEAT}_old")
        _copy_and_finish(cursor, HEARTBEAT, [*definitions, UNIQUE_SEQ.format("_ts", "device_id, seq, ts")])

        definitions = _definitions(cursor, ROLLUP, skip=set())
        _convert(cursor, ROLLUP, "PARTITION BY LIST (resolution)", "id, resolution, bucket", definitions)
        cursor.execute(
            f"CREATE TABLE {ROLLUP}_minute PARTITION OF {ROLLUP} FOR VALUES IN ('minute') "
            "PARTITION BY RANGE (bucket)"
        )
        cursor.execute(f"CREATE TABLE {ROLLUP}_coarse PARTITION OF {ROLLUP} DEFAULT")
        _manage(cursor, f"{ROLLUP}_minute", "bucket", "1 month", 2, f"{ROLLUP}_old WHERE resolution = 'minute'")
        _copy_and_finish(cursor, ROLLUP, definitions)

        # What a contract keeps past the settings' windows (fleet/partitions.py): same columns.
        for table, column in ((HEARTBEAT, "ts"), (ROLLUP, "bucket")):
            cursor.execute(f"CREATE TABLE {table}_retained (LIKE {table} INCLUDING DEFAULTS)")
            cursor.execute(f"CREATE INDEX {table}_retained_customer ON {table}_retained (customer_id, {column})")


def unpartition(apps, schema_editor) -> None:
    """Back to plain tables (the retained rows are dropped with their tables)."""
    with schema_editor.connection.cursor() as cursor:
        for table, primary_key, parents in (
            (HEARTBEAT, "id, ts", [HEARTBEAT]),
            (ROLLUP, "id, resolution, bucket", [f"{ROLLUP}_minute"]),
        ):
            cursor.execute(f"DROP TABLE {table}_retained")
            skip = {"heartbeat_once_per_device_seq_ts"} if table == HEARTBEAT else set()
            definitions = _definitions(cursor, table, skip=skip)
            _convert(cursor, table, "", "id", definitions)
            for parent in parents:
                _unmanage(cursor, parent)
            extra = [UNIQUE_SEQ.format("", "device_id, seq")] if table == HEARTBEAT else []
            _copy_and_finish(cursor, table, [*definitions, *extra])


class Migration(migrations.Migration):
    dependencies = [
        ("fleet", "0009_maintenance_health_thresholds"),
        ("portal", "0005_billing_identity_and_locale"),
    ]

    operations = [
        migrations.CreateModel(
            name="TelemetryRetention",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("raw_days", models.PositiveIntegerField(help_text="Raw heartbeats are kept this many days.")),
                (
                    "minute_days",
                    models.PositiveIntegerField(help_text="Minute rollups are kept this many days."),
                ),
                (
                    "customer",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="telemetry_retention",
                        to="portal.customer",
                    ),
                ),
            ],
            options={"ordering": ["customer"]},
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(partition, unpartition)],
            state_operations=[
                migrations.RemoveConstraint(model_name="heartbeat", name="heartbeat_once_per_device_seq"),
                migrations.AddConstraint(
                    model_name="heartbeat",
                    constraint=models.UniqueConstraint(
                        fields=("device", "seq", "ts"), name="heartbeat_once_per_device_seq_ts"
                    ),
                ),
            ],
        ),
    ]
