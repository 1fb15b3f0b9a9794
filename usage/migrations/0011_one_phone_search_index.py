"""Phone search through one trigram index instead of two (docs/scaling.md, "The hot
table's indexes and keys"): every ingested event paid a dozen trigram entries into each.

`usage_phone_search_trgm` indexes the number without its formatting, upper-cased: the
expression `usage.search.number_condition` compiles to for every text (a number or not).
It replaces `usage_phone_trgm` (0007, the raw number) and `usage_phone_digits_trgm` (0009,
the number without formatting). PostgreSQL only; other databases search without it."""

from django.db import migrations

PHONE_SEARCH_TRGM = "usage_phone_search_trgm"
# What Django compiles `IContains(usage.search.unformatted_phone_number(), …)` to, left of
# LIKE (the planner matches the expression, not its text; a test EXPLAINs the search).
EXPRESSION = (
    "UPPER((REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(phone_number, ' ', ''), '-', ''), "
    "'(', ''), ')', ''), '.', ''), '/', ''))::text)"
)
OLD = {
    "usage_phone_trgm": "UPPER(phone_number::text)",
    "usage_phone_digits_trgm": (
        "(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(phone_number, ' ', ''), '-', ''), "
        "'(', ''), ')', ''), '.', ''), '/', ''))::text"
    ),
}


def _trigram_index(schema_editor, name: str, expression: str) -> None:
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS {name} ON usage_usagerecord "
        f"USING gin (({expression}) gin_trgm_ops)"
    )


def one_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    _trigram_index(schema_editor, PHONE_SEARCH_TRGM, EXPRESSION)
    for name in OLD:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
    # Statistics of the indexed expression: how common a number fragment is.
    schema_editor.execute("ANALYZE usage_usagerecord")


def two_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, expression in OLD.items():
        _trigram_index(schema_editor, name, expression)
    schema_editor.execute(f"DROP INDEX IF EXISTS {PHONE_SEARCH_TRGM}")
    schema_editor.execute("ANALYZE usage_usagerecord")


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0010_partitioned_records_and_key_guard"),
    ]

    operations = [
        migrations.RunPython(one_index, two_indexes),
    ]
