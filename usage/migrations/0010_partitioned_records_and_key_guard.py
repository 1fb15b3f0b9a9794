"""Usage records partitioned by month on PostgreSQL, with a guard table for §6.4.

* UsageKey (both databases): one row per usage record, unique (company, external_id);
  filled here from the existing records. It replaces the unique constraint of the records
  table, which a partitioned table could only have with the month in it.
* The foreign keys of the records to company, office, service and funding account lose
  their database constraints, and service its index (docs/scaling.md: the hot table's
  indexes and keys).
* PostgreSQL: the table is rebuilt, rows included, as PARTITION BY RANGE (occurred_at)
  (usage/partitions.py table_rebuild), and gets a BRIN index on created_at. SQLite keeps
  a plain table. Reversible (the rebuild back to a plain table).
"""

import django.db.models.deletion
from django.db import migrations, models

BRIN = "usage_created_at_brin"


def partition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from usage.partitions import table_rebuild

    table_rebuild(schema_editor, partitioned=True)
    schema_editor.execute(f"CREATE INDEX {BRIN} ON usage_usagerecord USING brin (created_at)")


def unpartition(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    from usage.partitions import table_rebuild

    schema_editor.execute(f"DROP INDEX IF EXISTS {BRIN}")
    table_rebuild(schema_editor, partitioned=False)


def keys_fill(apps, schema_editor):
    schema_editor.execute(
        "INSERT INTO usage_usagekey (company_id, external_id, record_id, occurred_at) "
        "SELECT company_id, external_id, id, occurred_at FROM usage_usagerecord"
    )
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ANALYZE usage_usagekey")


class Migration(migrations.Migration):
    dependencies = [
        ("credits", "0005_customer_care_money_controls"),
        ("offices", "0001_initial"),
        ("usage", "0009_phone_digits_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="UsageKey",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("external_id", models.CharField(max_length=200)),
                ("record_id", models.BigIntegerField()),
                ("occurred_at", models.DateTimeField()),
                ("company", models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="offices.company")),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("company", "external_id"), name="usage_key_once_per_company")],
            },
        ),
        migrations.RemoveConstraint(
            model_name="usagerecord",
            name="usage_external_id_once_per_company",
        ),
        migrations.AlterField(
            model_name="usagerecord",
            name="company",
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name="usage_records", to="offices.company"),
        ),
        migrations.AlterField(
            model_name="usagerecord",
            name="office",
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name="usage_records", to="offices.office"),
        ),
        migrations.AlterField(
            model_name="usagerecord",
            name="service",
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name="usage_records", to="usage.service"),
        ),
        migrations.AlterField(
            model_name="usagerecord",
            name="funding_account",
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name="+", to="credits.account"),
        ),
        migrations.RunPython(partition, unpartition),
        migrations.RunPython(keys_fill, migrations.RunPython.noop),
    ]
