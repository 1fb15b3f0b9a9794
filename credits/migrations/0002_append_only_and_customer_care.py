from django.contrib.auth.management import create_permissions
from django.db import migrations

from core.immutable import immutable_trigger_sql

APPEND_ONLY_TABLES = ["credits_ledgerentry", "credits_poolingchange", "usage_usagerecord"]

CUSTOMER_CARE_PERMISSIONS = {
    "offices": {
        "company": ["view", "add", "change"],
        "office": ["view", "add", "change"],
        "officeaddon": ["view", "add", "change", "delete"],
        "plan": ["view", "add", "change"],
        "addon": ["view", "add", "change"],
        "membership": ["view", "add", "change", "delete"],
    },
    "credits": {
        "account": ["view"],
        "ledgerentry": ["view", "add"],
        "allowance": ["view"],
        "poolingchange": ["view"],
    },
    "usage": {"service": ["view", "add", "change"], "usagerecord": ["view"]},
    "auth": {"user": ["view", "add", "change"]},
}


def triggers_forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in APPEND_ONLY_TABLES:
        schema_editor.execute(immutable_trigger_sql(table)[0])


def triggers_reverse(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in APPEND_ONLY_TABLES:
        schema_editor.execute(immutable_trigger_sql(table)[1])


def customer_care_group(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Customer Care")
    wanted = [("offices", "change_pooling")]
    for app_label, models in CUSTOMER_CARE_PERMISSIONS.items():
        for model, actions in models.items():
            wanted += [(app_label, f"{action}_{model}") for action in actions]
    for app_label, codename in wanted:
        group.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("credits", "0001_initial"),
        ("usage", "0001_initial"),
        ("offices", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(triggers_forward, triggers_reverse),
        migrations.RunPython(customer_care_group, migrations.RunPython.noop),
    ]
