"""Rollup tables leave room in each page, so the worker's upserts update rows in place.

The ingest worker updates a heartbeat's minute, hour and day rollup rows with every batch
(an asset reporting every 2 s: each minute row ~30 times, each hour row ~1,800). With full
pages (PostgreSQL's default fillfactor of 100) nearly every one of those updates wrote the
new row version on another page, with a new entry in each of the table's indexes; a later
upsert of the same key then walked past the dead entries to find the live row. Measured on a
250-device batch (docs/performance.md, 2026-12-08): 5–10 % of the updates were in place (HOT)
and the rollup upsert took ~60 % of PostgreSQL's CPU per heartbeat; with room left in each
page 92–100 % are, and it costs a third to two fifths of that.

The hour/day partition and every minute partition get the fillfactor, and so does
pg_partman's template table, whose relation options pg_partman copies to each minute
partition it makes from now on. Only pages written from now on leave the room (no rewrite,
no long lock: `ALTER TABLE … SET (fillfactor)` takes a lock that lets reads and writes go
on); rows on full pages move to a page with room at their next update. docs/ingest.md,
"Partitioned telemetry".
"""

from django.db import migrations

# Hour and day rows are updated all hour or all day: half of each page is left free, and
# nearly every update is in place. Minute rows are updated for a minute at most (never, for a
# machine reporting once a minute), and their partitions are the big ones: a quarter.
COARSE = ("fleet_telemetryrollup_coarse", 50)
MINUTE = 75
TEMPLATE = "partman.template_public_fleet_telemetryrollup_minute"


def _tables(cursor) -> list[tuple[str, int]]:
    """The rollup partitions the worker updates, and pg_partman's template of new minute
    partitions, with the fillfactor each gets."""
    cursor.execute(
        "SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'fleet_telemetryrollup_minute'::regclass AND c.relkind = 'r' "
        "UNION ALL SELECT to_regclass(%s)::text WHERE to_regclass(%s) IS NOT NULL ORDER BY 1",
        [TEMPLATE, TEMPLATE],
    )
    return [COARSE, *((name, MINUTE) for (name,) in cursor.fetchall())]


def set_fillfactor(apps, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        for table, fillfactor in _tables(cursor):
            cursor.execute(f"ALTER TABLE {table} SET (fillfactor = {fillfactor})")


def reset_fillfactor(apps, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        for table, _fillfactor in _tables(cursor):
            cursor.execute(f"ALTER TABLE {table} RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("fleet", "0011_heartbeat_device_key_only")]

    operations = [migrations.RunPython(set_fillfactor, reset_fillfactor, elidable=False)]
