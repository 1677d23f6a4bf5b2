"""Document numbering moves to `portal` (tickets use it as well as invoices): the table is
renamed, rows and all, and billing's state forgets the model; portal's 0003 takes it over."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0002_usage_covering_index"),
    ]
    # portal's model state must not exist before its table does.
    run_before = [
        ("portal", "0003_document_sequence"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.AlterModelTable(name="documentsequence", table="portal_documentsequence"),
            ],
            state_operations=[
                migrations.DeleteModel(name="DocumentSequence"),
            ],
        ),
    ]
