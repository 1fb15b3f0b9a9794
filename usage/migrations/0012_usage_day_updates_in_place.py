"""Day rollups updated in place (docs/scaling.md, "The write path's locked section"): the
two covering indexes lose their sums, and on PostgreSQL the table's pages keep 30 % free,
so the charging transaction's `+=` on a rollup row is a HOT update (a new version on the
same page, no index entries) instead of five index insertions. New pages only; existing
rows move once, at their next update."""

from django.db import migrations, models

FILLFACTOR = 70


def _fillfactor(value):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        table = apps.get_model("usage", "UsageDay")._meta.db_table
        setting = f"SET (fillfactor = {value})" if value else "RESET (fillfactor)"
        schema_editor.execute(f"ALTER TABLE {table} {setting}")

    return apply


class Migration(migrations.Migration):
    dependencies = [
        ("offices", "0002_customer_care_clears_lockouts"),
        ("usage", "0011_one_phone_search_index"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="usageday", name="usage_day_company_funded"),
        migrations.RemoveIndex(model_name="usageday", name="usage_day_company_service"),
        migrations.AddIndex(
            model_name="usageday",
            index=models.Index(fields=["company", "funded"], name="usage_day_company_funded"),
        ),
        migrations.AddIndex(
            model_name="usageday",
            index=models.Index(fields=["company", "service"], name="usage_day_company_service"),
        ),
        migrations.RunPython(_fillfactor(FILLFACTOR), _fillfactor(None)),
    ]
