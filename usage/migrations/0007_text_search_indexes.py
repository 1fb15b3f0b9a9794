# Text search of the usage history: see usage/search.py.

from django.db import migrations, models

PHONE_TRGM = "usage_phone_trgm"


def phone_trigram_index(apps, schema_editor):
    """PostgreSQL: a trigram index on the phone number, as `phone_number__icontains`
    compiles it (UPPER(…::text) LIKE …); other databases search without it."""
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {PHONE_TRGM} ON usage_usagerecord "
        "USING gin (UPPER(phone_number::text) gin_trgm_ops)"
    )
    # Statistics of the indexed expression, so the planner knows at once how common a
    # number fragment is (walk the newest records, or use the index).
    schema_editor.execute("ANALYZE usage_usagerecord")


def drop_phone_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {PHONE_TRGM}")


class Migration(migrations.Migration):

    dependencies = [
        ("usage", "0006_ingest_indexes_only_where_read"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="usagerecord",
            index=models.Index(
                fields=["company", "user_label", "occurred_at"],
                include=(
                    "office",
                    "service",
                    "credit_kind",
                    "cost",
                    "allowance_part",
                    "pool_part",
                    "wallet_part",
                    "ai_part",
                    "uncovered",
                ),
                name="usage_company_label",
            ),
        ),
        migrations.RunPython(phone_trigram_index, drop_phone_trigram_index),
    ]
