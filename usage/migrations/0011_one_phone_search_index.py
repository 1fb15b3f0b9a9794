"""Phone search through one trigram index instead of two (docs/scaling.md, "The hot
table's indexes and keys"): every ingested event paid a dozen trigram entries into each.

`usage_phone_trgm` (0007, the number as written, upper-cased) is dropped. Every search
of numbers now asks `usage_phone_digits_trgm` (0009, the number without its formatting):
a number with LIKE, a name with ILIKE, then tested against the number as written
(usage.search.number_condition). PostgreSQL only; other databases search without it."""

from django.db import migrations

PHONE_TRGM = "usage_phone_trgm"


def drop_phone_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {PHONE_TRGM}")


def phone_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {PHONE_TRGM} ON usage_usagerecord "
        "USING gin (UPPER(phone_number::text) gin_trgm_ops)"
    )
    schema_editor.execute("ANALYZE usage_usagerecord")


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0010_partitioned_records_and_key_guard"),
    ]

    operations = [
        migrations.RunPython(drop_phone_trigram_index, phone_trigram_index),
    ]
