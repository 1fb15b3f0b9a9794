from django.contrib.auth.management import create_permissions
from django.db import migrations

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


class Migration(migrations.Migration):
    dependencies = [("credits", "0004_money_controls")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
