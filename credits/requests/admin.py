"""Credit requests in the admin: read-only for customer care (the row is the audit of
who asked, who decided, when and how)."""

from django.contrib import admin

from core.admin import ReadOnlyAdmin
from credits.models import CreditRequest


@admin.register(CreditRequest)
class CreditRequestAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "company",
        "office",
        "amount",
        "status",
        "requested_by",
        "decided_by",
        "decided_at",
    )
    list_filter = ("status", "company")
    list_select_related = ("company", "office", "requested_by", "decided_by")
    search_fields = ("office__name", "requested_by__username", "note", "decline_reason")
    date_hierarchy = "created_at"
