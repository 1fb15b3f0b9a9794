"""Invites and the team audit in the admin: read-only for customer care, who keeps
managing memberships and users as before (offices/admin.py)."""

from django.contrib import admin

from core.admin import ReadOnlyAdmin
from offices.models import Invite, TeamChange


@admin.register(Invite)
class InviteAdmin(ReadOnlyAdmin):
    list_display = ("email", "company", "role", "status", "invited_by", "sent_at", "closed_at")
    list_filter = ("status", "role", "company")
    list_select_related = ("company", "invited_by")
    search_fields = ("email",)
    exclude = ("nonce",)  # the link's one-use secret


@admin.register(TeamChange)
class TeamChangeAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "company",
        "action",
        "person",
        "old_value",
        "new_value",
        "changed_by",
    )
    list_filter = ("action", "company")
    list_select_related = ("company", "changed_by")
    search_fields = ("person", "old_value", "new_value")
    date_hierarchy = "created_at"
