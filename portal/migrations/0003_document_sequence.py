"""`DocumentSequence` joins portal in the state only: billing's 0003 renamed its table (with its
rows) to portal_documentsequence and runs before this one."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0002_api_tokens"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name="DocumentSequence",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("series", models.CharField(max_length=10)),
                        ("year", models.PositiveSmallIntegerField()),
                        ("last_number", models.PositiveIntegerField(default=0)),
                    ],
                    options={
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("series", "year"), name="one_sequence_per_series_year"
                            )
                        ],
                    },
                ),
            ],
        ),
    ]
