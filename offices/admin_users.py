"""User accounts in the admin."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User

admin.site.unregister(User)


@admin.register(User)
class StaffUserAdmin(UserAdmin):
    """Only superusers hand out rights: other staff who may edit users (customer care)
    cannot make anyone — themselves included — a superuser or grant permissions, and
    cannot change a superuser's account or password."""

    RIGHTS = ("is_superuser", "groups", "user_permissions")

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        if request.user.is_superuser or obj is None:
            return readonly
        return (*readonly, *self.RIGHTS)

    def has_change_permission(self, request, obj=None):
        # A superuser's account (its password above all) is theirs alone: whoever could
        # set it could log in with every right.
        if obj is not None and obj.is_superuser and not request.user.is_superuser:
            return False
        return super().has_change_permission(request, obj)
