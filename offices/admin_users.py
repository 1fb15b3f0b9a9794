"""User accounts and login lockouts in the admin.

Customer care manages portal users, not other staff (SPEC §5): only a superuser may
change a staff account or hand out staff status, groups or permissions. Customer care
clears the login lockouts (django-axes attempts) that keep a user out."""

from __future__ import annotations

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin, messages
from django.contrib.admin.models import DELETION, LogEntry
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


# Login lockouts (django-axes) ---------------------------------------------------------


if admin.site.is_registered(AccessAttempt):
    admin.site.unregister(AccessAttempt)


@admin.register(AccessAttempt)
class LockoutAdmin(AccessAttemptAdmin):
    """The failed-login counters of each (username, address) pair; deleting one lets that
    pair log in again at once instead of after the cool-off."""

    actions = ["clear_lockouts", "cleanup_expired_attempts"]

    @admin.action(description="Clear the lockout of the selected log-ins", permissions=["delete"])
    def clear_lockouts(self, request, queryset):
        attempts = list(queryset)
        for attempt in attempts:
            # The attempt's own name is only its time; the audit line names the log-in.
            LogEntry.objects.log_actions(
                user_id=request.user.pk,
                queryset=[attempt],
                action_flag=DELETION,
                change_message=f"Cleared the lockout of {attempt.username} "
                f"from {attempt.ip_address}.",
                single_object=True,
            )
        queryset.delete()
        cleared = ", ".join(f"{a.username} from {a.ip_address}" for a in attempts)
        self.message_user(
            request, f"Cleared {len(attempts)} lockout(s): {cleared}.", messages.SUCCESS
        )
