"""Balances, ledger, allowances and the pooling audit in the admin: all read-only.

Balances change only through the services (Add credits, the pooling toggle, usage), so
nobody — not even a superuser — adds, edits or deletes these rows here (SPEC §6.8)."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from credits.models import Account, Allowance, LedgerEntry, PoolingChange
from offices.models import Office


class ReadOnlyAdmin(admin.ModelAdmin):
    """Searchable, filterable, never writable. No actions, so no bulk delete either."""

    actions = None
    show_full_result_count = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class OfficeFilter(admin.SimpleListFilter):
    """Offices labelled with their company, in one query (the default filter asks per row)."""

    title = "office"
    parameter_name = "office"
    field = "office_id"

    def lookups(self, request, model_admin):
        offices = Office.objects.select_related("company").order_by("company__name", "name")
        return [(str(o.pk), f"{o.company.name} — {o.name}") for o in offices]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(**{self.field: int(value)})


class AccountOfficeFilter(OfficeFilter):
    field = "account__office_id"


class PeriodFilter(admin.SimpleListFilter):
    """Billing periods that have allowance rows (a small table), newest first."""

    title = "billing period"
    parameter_name = "period"

    def lookups(self, request, model_admin):
        periods = Allowance.objects.order_by("-period").values_list("period", flat=True).distinct()
        return [(p.isoformat(), f"{p:%B %Y}") for p in periods]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        import datetime as dt

        try:
            period = dt.date.fromisoformat(value)
        except ValueError:
            return queryset.none()
        return queryset.filter(period=period)


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("__str__", "company", "kind", "office", "balance", "updated_at")
    list_filter = ("kind", "company", OfficeFilter)
    list_select_related = ("company", "office")
    search_fields = ("company__name", "company__slug", "office__name", "office__slug")
    readonly_fields = ("ledger_link",)

    @admin.display(description="Ledger")
    def ledger_link(self, obj):
        url = reverse("admin:credits_ledgerentry_changelist")
        return format_html(
            '<a href="{}?account__id__exact={}">Entries of this account</a>', url, obj.pk
        )


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_at",
        "company",
        "account_label",
        "entry_type",
        "amount",
        "balance_after",
        "created_by",
        "memo",
        "reference",
    )
    list_filter = ("entry_type", "company", "account__kind", AccountOfficeFilter)
    list_select_related = ("company", "account__office", "account__company", "created_by")
    search_fields = ("memo", "reference", "idempotency_key", "created_by__username", "=id")
    date_hierarchy = "created_at"
    readonly_fields = ("usage_records", "pooling_change_link")

    def lookup_allowed(self, lookup, value, request=None):
        # Links from accounts and pooling changes filter on these.
        if lookup in ("account__id__exact", "pooling_change__id__exact"):
            return True
        return super().lookup_allowed(lookup, value, request)

    @admin.display(description="Account", ordering="account_id")
    def account_label(self, obj):
        return str(obj.account)

    @admin.display(description="Usage records")
    def usage_records(self, obj):
        if not obj.usage_batch:
            return "—"
        url = reverse("admin:usage_usagerecord_changelist")
        return format_html('<a href="{}?batch={}">Events of this batch</a>', url, obj.usage_batch)

    @admin.display(description="Pooling change")
    def pooling_change_link(self, obj):
        if not obj.pooling_change_id:
            return "—"
        url = reverse("admin:credits_poolingchange_change", args=[obj.pooling_change_id])
        return format_html('<a href="{}">{}</a>', url, obj.pooling_change)


class OverAllowanceFilter(admin.SimpleListFilter):
    title = "overage"
    parameter_name = "over"

    def lookups(self, request, model_admin):
        return [("yes", "Cost above the allowance"), ("no", "Within the allowance")]

    def queryset(self, request, queryset):
        from django.db.models import F

        if self.value() == "yes":
            return queryset.filter(cost_total__gt=F("included"))
        if self.value() == "no":
            return queryset.filter(cost_total__lte=F("included"))
        return queryset


@admin.register(Allowance)
class AllowanceAdmin(ReadOnlyAdmin):
    list_display = (
        "period",
        "company",
        "office",
        "kind",
        "included",
        "used",
        "cost_total",
        "pool_drawn",
        "wallet_drawn",
        "ai_drawn",
        "uncovered",
        "events",
    )
    list_filter = ("kind", PeriodFilter, OverAllowanceFilter, "company", OfficeFilter)
    list_select_related = ("company", "office__company")
    search_fields = ("office__name", "office__slug", "company__name")


@admin.register(PoolingChange)
class PoolingChangeAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "company", "state", "amount_moved", "changed_by", "reason")
    list_filter = ("enabled", "company")
    list_select_related = ("company", "changed_by")
    search_fields = ("reason", "company__name", "changed_by__username")
    date_hierarchy = "created_at"
    fields = (
        "company",
        "state",
        "reason",
        "amount_moved",
        "moves_table",
        "changed_by",
        "created_at",
    )
    readonly_fields = ("state", "moves_table")

    @admin.display(description="Pooling", ordering="enabled")
    def state(self, obj):
        return "Turned on" if obj.enabled else "Turned off"

    @admin.display(description="Moves")
    def moves_table(self, obj):
        return moves_html(obj.moves)


def moves_html(moves: list[dict]):
    if not moves:
        return "Nothing to move"
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>→ {}</td><td>{}</td></tr>",
        ((m.get("from", ""), m.get("to", ""), m.get("amount", "")) for m in moves),
    )
    return format_html(
        "<table><thead><tr><th>From</th><th>To</th><th>Credits</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        rows,
    )
