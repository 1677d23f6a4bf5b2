"""Raw heartbeats keep one foreign key in the database, to their device.

PostgreSQL checks every foreign key of every inserted row at commit, one look-up each: with
three, that was 22 % of a 10,000-heartbeat batch (~0.1 s per key). The worker copies
`customer` and `asset` from the device row it holds locked, so they are the device's own;
Django still refuses to delete a customer or asset heartbeats refer to (PROTECT).
docs/ingest.md, "The worker's batches"; docs/performance.md, S1b.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("fleet", "0010_partitioned_telemetry"),
        ("portal", "0005_billing_identity_and_locale"),
    ]

    operations = [
        migrations.AlterField(
            model_name="heartbeat",
            name="asset",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="heartbeats",
                to="fleet.asset",
            ),
        ),
        migrations.AlterField(
            model_name="heartbeat",
            name="customer",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="heartbeats",
                to="portal.customer",
            ),
        ),
    ]
