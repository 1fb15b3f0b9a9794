"""Services and their rates (editable data) and usage records (read-only history)."""

import datetime as dt

from django.contrib import admin
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from credits import admin as credits_admin
from credits.admin import OfficeFilter, PeriodFilter, ReadOnlyAdmin
from credits.periods import period_of
from offices.admin_display import credits_column, local_time_column
from offices.models import Company
from offices.templatetags.portal_format import credits
from usage.models import Service, UsageRecord
from usage.statements import company_first_period
from usage.whatif import whatif_replay


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


# The company page, with what pooling would have saved (SPEC §9.2) ------------------
#
# credits' CompanyAdmin cannot show it (usage is the layer above credits), so usage
# extends it here and registers the extension in its place: same page, one more
# read-only field. Whatever credits adds to its CompanyAdmin is inherited.


def whatif_periods(company, now=None) -> list[dt.date]:
    """The what-if periods care sees: the last complete month (if the company had one)
    and the current month to date."""
    tz = company.tz
    current = period_of(now or timezone.now(), tz)
    previous = (current - dt.timedelta(days=1)).replace(day=1)
    first = company_first_period(company)
    return [p for p in (previous, current) if p >= first]


def whatif_html(company) -> str:
    rows, details = [], []
    for period in whatif_periods(company):
        w = whatif_replay(company, period=period)
        check = (
            ("replays exactly" if w.replay_matches_actual else "REPLAY DIFFERS")
            if w.pooled_throughout
            else "pooling off for some or all of it"
        )
        rows.append(
            (
                f"{period:%B %Y}",
                f"{w.actual_uncovered:,}",
                f"{w.replayed_uncovered:,}",
                f"{w.covered_by_pooling:,}",
                f"{w.wallets_closing:,}",
                check,
            )
        )
        details += [
            (
                f"{period:%Y-%m}",
                o.name,
                f"{o.actual_uncovered:,}",
                f"{o.replayed_uncovered:,}",
                f"{o.idle_elsewhere:,}",
            )
            for o in w.offices
            if o.actual_uncovered or o.replayed_uncovered
        ]
    summary = format_html_join(
        "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows
    )
    offices = format_html_join(
        "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", details
    )
    return format_html(
        '<table id="whatif-admin"><thead><tr><th>Period</th><th>Actual uncovered</th>'
        "<th>With pooling</th><th>Pooling would have covered</th>"
        "<th>Left in wallets</th><th>Check</th></tr></thead><tbody>{}</tbody></table>"
        "<table><thead><tr><th>Period</th><th>Office</th><th>Actual uncovered</th>"
        "<th>With pooling</th><th>Unused in other wallets</th></tr></thead>"
        "<tbody>{}</tbody></table>"
        '<p class="help">Standard usage replayed in charge order as if pooling had been on '
        "all month (allowances unchanged; AI credits are never pooled). Read-only.</p>",
        summary,
        offices,
    )


class CompanyAdmin(credits_admin.CompanyAdmin):
    readonly_fields = (*credits_admin.CompanyAdmin.readonly_fields, "pooling_whatif")
    fieldsets = (
        *credits_admin.CompanyAdmin.fieldsets,
        ("What pooling would have saved", {"fields": ("pooling_whatif",)}),
    )

    @admin.display(description="What-if")
    def pooling_whatif(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        return whatif_html(obj)


admin.site.unregister(Company)
admin.site.register(Company, CompanyAdmin)


from usage import admin_api_keys  # noqa: E402, F401  (API keys live in their own module)
