from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant_view_logentry(apps, schema_editor):
    """Customer care reads the admin audit trail (who changed what, when, why)."""
    admin_config = apps.get_app_config("admin")
    admin_config.models_module = True
    create_permissions(admin_config, apps=apps, verbosity=0)
    admin_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Customer Care")
    group.permissions.add(
        Permission.objects.get(content_type__app_label="admin", codename="view_logentry")
    )


def revoke_view_logentry(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="Customer Care").first()
    permission = Permission.objects.filter(
        content_type__app_label="admin", codename="view_logentry"
    ).first()
    if group and permission:
        group.permissions.remove(permission)


class Migration(migrations.Migration):
    dependencies = [
        ("credits", "0002_append_only_and_customer_care"),
        ("admin", "0003_logentry_add_action_flag_choices"),
    ]

    operations = [migrations.RunPython(grant_view_logentry, revoke_view_logentry)]
