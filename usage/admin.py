"""Services and their rates (editable data) and usage records (read-only history)."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html

from credits.admin import OfficeFilter, PeriodFilter, ReadOnlyAdmin
from offices.admin_display import credits_column, local_time_column
from offices.templatetags.portal_format import credits
from usage.models import Service, UsageRecord


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "unit", "rate", "credit_kind", "active")
    list_editable = ("rate", "active")
    list_filter = ("credit_kind", "unit", "active")
    search_fields = ("code", "name")
    show_full_result_count = False

    def has_delete_permission(self, request, obj=None):
        # Usage records point at their service; retire one with `active` instead.
        return False


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    list_display = (
        "occurred_local",
        "external_id",
        "company",
        "office_name",
        "service",
        "quantity",
        "cost_credits",
        "allowance_credits",
        "funded_from",
        "uncovered_credits",
        "pooling_on",
        "user_label",
        "phone_number",
    )
    list_filter = ("company", OfficeFilter, "service", "credit_kind", PeriodFilter, "pooling_on")
    list_select_related = ("company", "office", "service")
    search_fields = ("=external_id", "user_label", "phone_number")
    date_hierarchy = "occurred_at"
    readonly_fields = ("ledger_link",)

    def lookup_allowed(self, lookup, value, request=None):
        # A ledger entry links to the events of its usage batch.
        if lookup == "batch":
            return True
        return super().lookup_allowed(lookup, value, request)

    occurred_local = local_time_column("occurred_at", "occurred")
    cost_credits = credits_column("cost", "cost")
    allowance_credits = credits_column("allowance_part", "allowance")
    uncovered_credits = credits_column("uncovered", "uncovered")

    def get_queryset(self, request):
        # Its title names the service (UsageRecord.__str__).
        return super().get_queryset(request).select_related("service")

    @admin.display(description="Office", ordering="office__name")
    def office_name(self, obj):
        return obj.office.name

    @admin.display(description="Funded")
    def funded_from(self, obj):
        parts = [
            f"{credits(part)} ({label})"
            for label, part in (
                ("pool", obj.pool_part),
                ("wallet", obj.wallet_part),
                ("AI credits", obj.ai_part),
            )
            if part
        ]
        return ", ".join(parts) or "0.00"

    @admin.display(description="Ledger")
    def ledger_link(self, obj):
        url = reverse("admin:credits_ledgerentry_changelist")
        return format_html('<a href="{}?q={}">Ledger entries of this batch</a>', url, obj.batch)


from usage import admin_api_keys  # noqa: E402, F401  (API keys live in their own module)
