"""User accounts in the admin.

Customer care manages portal users, not other staff (SPEC §5): only a superuser may
change a staff account or hand out staff status, groups or permissions."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User

admin.site.unregister(User)


def is_staff_account(user: User) -> bool:
    return user.is_staff or user.is_superuser


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    """Only superusers manage staff. Anyone else who may edit users (customer care) edits
    portal users and their own name and e-mail; they cannot touch another staff account
    (its password least of all: whoever sets it logs in with its rights) and cannot make
    anyone, themselves included, staff, superuser or holder of a group or permission."""

    RIGHTS = ("is_staff", "is_superuser", "groups", "user_permissions")

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        if request.user.is_superuser or obj is None:
            # The add form has no rights fields: a new user is a portal user.
            return readonly
        return (*readonly, *self.RIGHTS)

    def _manages(self, request, obj) -> bool:
        """False when `obj` is a staff account that only a superuser may change."""
        if obj is None or request.user.is_superuser:
            return True
        return not is_staff_account(obj)

    def has_change_permission(self, request, obj=None):
        # The password view asks this too, so it guards password changes as well. One's
        # own account stays editable (name, e-mail); its rights fields are read-only.
        if obj is not None and obj.pk != request.user.pk and not self._manages(request, obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        # The bulk delete action asks this for every selected user, too.
        if not self._manages(request, obj):
            return False
        return super().has_delete_permission(request, obj)
