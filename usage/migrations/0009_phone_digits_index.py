# Phone search ignores formatting: see usage/search.py (unformatted_phone_number).

from django.db import migrations

PHONE_DIGITS_TRGM = "usage_phone_digits_trgm"
# The expression Django compiles unformatted_phone_number() and `contains` to.
EXPRESSION = (
    "(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(phone_number, ' ', ''), '-', ''), "
    "'(', ''), ')', ''), '.', ''), '/', ''))::text"
)


def phone_digits_index(apps, schema_editor):
    """PostgreSQL: a trigram index on the number without its formatting; other databases
    search without it."""
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {PHONE_DIGITS_TRGM} ON usage_usagerecord "
        f"USING gin (({EXPRESSION}) gin_trgm_ops)"
    )
    schema_editor.execute("ANALYZE usage_usagerecord")


def drop_phone_digits_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {PHONE_DIGITS_TRGM}")


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0008_usage_day_service_totals_index"),
    ]

    operations = [
        migrations.RunPython(phone_digits_index, drop_phone_digits_index),
    ]
