"""The Customer Care staff role: a group holding the pooling permission and what customer
care needs in the admin (SPEC §5). Data migrations create it; `customer_care_group_ensure`
restores it where a test database was flushed."""

from django.contrib.auth.models import Group, Permission

CUSTOMER_CARE_GROUP = "Customer Care"

CUSTOMER_CARE_PERMISSIONS = {
    "offices": {
        "company": ["view", "add", "change", "pooling"],
        "office": ["view", "add", "change"],
        "officeaddon": ["view", "add", "change", "delete"],
        "plan": ["view", "add", "change"],
        "addon": ["view", "add", "change"],
        "membership": ["view", "add", "change", "delete"],
        # Team pages (SPEC §11): invites and their audit, read-only in the admin.
        "invite": ["view"],
        "teamchange": ["view"],
    },
    "credits": {
        "account": ["view"],
        "ledgerentry": ["view", "add"],
        "allowance": ["view"],
        "poolingchange": ["view"],
        # Money controls (SPEC §8): changed through the services, which audit them.
        "rechargerule": ["view", "add", "change", "delete"],
        "poolcap": ["view", "add", "change", "delete"],
        "companycontrols": ["view", "add", "change"],
        "alert": ["view"],
        "webhookattempt": ["view"],
        "controlchange": ["view"],
        "creditrequest": ["view"],
    },
    "usage": {
        "service": ["view", "add", "change"],
        "usagerecord": ["view"],
        "apikey": ["view", "add", "change"],
    },
    "auth": {"user": ["view", "add", "change"]},
    "admin": {"logentry": ["view"]},
    # Clearing a login lockout is deleting its counter of failed attempts.
    "axes": {"accessattempt": ["view", "delete"]},
}


def customer_care_codenames() -> list[tuple[str, str]]:
    wanted = []
    for app_label, models in CUSTOMER_CARE_PERMISSIONS.items():
        for model, actions in models.items():
            for action in actions:
                codename = "change_pooling" if action == "pooling" else f"{action}_{model}"
                wanted.append((app_label, codename))
    return wanted


def customer_care_group_ensure() -> Group:
    """Create the group if missing and give it every customer-care permission."""
    group, _ = Group.objects.get_or_create(name=CUSTOMER_CARE_GROUP)
    for app_label, codename in customer_care_codenames():
        group.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return group
