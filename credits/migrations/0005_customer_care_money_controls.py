from django.contrib.auth.management import create_permissions
from django.db import migrations

from core.immutable import immutable_trigger_sql

GRANTS = {
    "rechargerule": ["view", "add", "change", "delete"],
    "poolcap": ["view", "add", "change", "delete"],
    "companycontrols": ["view", "add", "change"],
    "alert": ["view"],
    "webhookattempt": ["view"],
    "controlchange": ["view"],
}


def grant(apps, schema_editor):
    """Customer care sets money controls in the admin and sees alerts and deliveries."""
    config = apps.get_app_config("credits")
    config.models_module = True
    create_permissions(config, apps=apps, verbosity=0)
    config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Customer Care")
    for model, actions in GRANTS.items():
        for action in actions:
            group.permissions.add(
                Permission.objects.get(
                    content_type__app_label="credits", codename=f"{action}_{model}"
                )
            )


def audit_append_only(apps, schema_editor):
    """The money-control audit is append-only, like the ledger (SPEC §6.8, §8)."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(immutable_trigger_sql("credits_controlchange")[0])


def audit_append_only_reverse(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(immutable_trigger_sql("credits_controlchange")[1])


class Migration(migrations.Migration):
    dependencies = [("credits", "0004_money_controls")]

    operations = [
        migrations.RunPython(grant, migrations.RunPython.noop),
        migrations.RunPython(audit_append_only, audit_append_only_reverse),
    ]
