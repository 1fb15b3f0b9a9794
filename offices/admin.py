"""The customer-care admin of tenants: companies and offices (registered, with their
credits, by credits/admin.py), the catalog, memberships, staff accounts and the audit
log."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.forms.models import BaseInlineFormSet
from django.utils.html import format_html

from core.admin import ReadOnlyAdmin
from offices.models import AddOn, Membership, Office, OfficeAddOn, Plan, Role
from offices.services import late_window_set, membership_grant, office_addon_set, office_create

admin.site.site_header = "Unified Credit Pooling — administration"
admin.site.site_title = "Unified Credit Pooling admin"
admin.site.index_title = "Customer care"


# Companies ---------------------------------------------------------------------------


class OfficeInlineFormSet(BaseInlineFormSet):
    def clean(self):
        super().clean()
        if any(self.errors):
            return
        kept = [f for f in self.forms if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        primaries = [f for f in kept if f.cleaned_data.get("is_primary")]
        if len(primaries) != 1:
            found = "none is" if not primaries else f"{len(primaries)} are"
            raise ValidationError(
                f"A company needs exactly one primary office; {found} marked primary. "
                "Tick “Primary” on exactly one office."
            )


class OfficeInline(admin.TabularInline):
    model = Office
    formset = OfficeInlineFormSet
    fields = ("name", "slug", "plan", "is_primary")
    can_delete = False  # an office keeps its wallet and history
    show_change_link = True
    verbose_name_plural = "offices"

    def get_extra(self, request, obj=None, **kwargs):
        return 0 if obj else 1

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "is_primary":
            kwargs["label"] = "Primary"
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("plan")


class CompanyAdmin(admin.ModelAdmin):
    """A company and its offices. Registered by the credits admin (credits/admin.py),
    which adds its balances, pooling history, the pooling toggle and Add credits."""

    list_display = ("name", "slug", "office_count", "billing_timezone", "created_at")
    list_filter = ("billing_timezone",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    show_full_result_count = False
    editable_fields = ("name", "slug", "billing_timezone")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(num_offices=Count("offices"))

    def has_add_permission(self, request):
        # A company is born with its primary office, so adding one needs both rights.
        return super().has_add_permission(request) and request.user.has_perm("offices.add_office")

    def has_delete_permission(self, request, obj=None):
        # Accounts and ledger entries protect a company; deleting is never possible.
        return False

    @admin.display(description="Offices", ordering="num_offices")
    def office_count(self, obj):
        return obj.num_offices

    # The late-event window (SPEC §10.3) is saved by its service, which writes the audit line
    # with the old and new value; the admin's own line leaves it out.
    LATE_WINDOW = "late_event_window_days"

    def late_window_save(self, request, obj, form) -> None:
        if self.LATE_WINDOW in form.changed_data:
            late_window_set(
                company=obj, days=form.cleaned_data[self.LATE_WINDOW], actor=request.user
            )

    def construct_change_message(self, request, form, formsets, add=False):
        message = super().construct_change_message(request, form, formsets, add)
        if add or self.LATE_WINDOW not in form.changed_data:
            return message
        label = str(form[self.LATE_WINDOW].label)
        for part in message:
            fields = part.get("changed", {}).get("fields")
            if fields is not None and "name" not in part["changed"] and label in fields:
                fields.remove(label)
        return [p for p in message if p.get("changed", {}).get("fields", True)]

    def log_change(self, request, obj, message):
        if message == []:  # only the window changed: late_window_set logged it
            return None
        return super().log_change(request, obj, message)


# Offices and the catalog ---------------------------------------------------------------


class OfficeAddOnInline(admin.TabularInline):
    model = OfficeAddOn
    extra = 0
    autocomplete_fields = ("addon",)


class OfficeAdmin(admin.ModelAdmin):
    """Registered by the credits admin, which opens each new office's wallet."""

    office_create = staticmethod(office_create)

    list_display = ("name", "slug", "company", "is_primary", "plan")
    list_filter = ("is_primary", "plan", "company")
    list_select_related = ("company", "plan")
    search_fields = ("name", "slug", "company__name", "company__slug")
    show_full_result_count = False
    inlines = [OfficeAddOnInline]
    fields = ("company", "name", "slug", "plan", "is_primary", "created_at")
    prepopulated_fields = {"slug": ("name",)}

    def get_readonly_fields(self, request, obj=None):
        # The primary office is chosen on the company page (which checks there is exactly
        # one); an office never moves to another company (its wallet and history stay).
        if obj is None:
            return ("is_primary", "created_at")
        return ("company", "is_primary", "created_at")

    def get_prepopulated_fields(self, request, obj=None):
        return self.prepopulated_fields if obj is None else {}

    def has_delete_permission(self, request, obj=None):
        return False  # its wallet and usage history protect it

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=[f for f in ("name", "slug", "plan") if f in form.changed_data])
            return
        created = self.office_create(
            company=obj.company, name=obj.name, slug=obj.slug, plan=obj.plan, actor=request.user
        )
        obj.pk = created.pk
        obj.created_at = created.created_at
        obj._state.adding = False

    def save_formset(self, request, form, formset, change):
        if formset.model is not OfficeAddOn:
            return super().save_formset(request, form, formset, change)
        rows = formset.save(commit=False)
        for gone in formset.deleted_objects:
            gone.delete()
        formset.new_objects = [
            office_addon_set(
                office=form.instance, addon=row.addon, quantity=row.quantity, actor=request.user
            )
            for row in rows
        ]


class CatalogAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "included_standard", "included_ai_agent", "office_count")
    search_fields = ("code", "name")
    prepopulated_fields = {"code": ("name",)}
    show_full_result_count = False

    @admin.display(description="Offices", ordering="num_offices")
    def office_count(self, obj):
        return obj.num_offices


@admin.register(Plan)
class PlanAdmin(CatalogAdmin):
    def get_queryset(self, request):
        return super().get_queryset(request).annotate(num_offices=Count("offices"))


@admin.register(AddOn)
class AddOnAdmin(CatalogAdmin):
    def get_queryset(self, request):
        return super().get_queryset(request).annotate(num_offices=Count("officeaddon"))


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "role", "company", "office")
    list_filter = ("role", "company")
    list_select_related = ("user", "company", "office__company")
    search_fields = (
        "user__username",
        "user__email",
        "user__first_name",
        "user__last_name",
        "company__name",
        "office__name",
    )
    autocomplete_fields = ("user", "company", "office")
    fields = ("user", "company", "office", "role_display")
    readonly_fields = ("role_display",)
    show_full_result_count = False

    @admin.display(description="Role")
    def role_display(self, obj):
        if obj is None or obj.pk is None:
            return "Company admin without an office; office admin with one."
        return obj.get_role_display()

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        form.base_fields[
            "office"
        ].help_text = (
            "Leave empty for a company admin (every office); choose one for an office admin."
        )
        return form

    def save_model(self, request, obj, form, change):
        # The role follows from the scope, so the two can never disagree.
        if change:
            obj.role = Role.OFFICE_ADMIN if obj.office_id else Role.COMPANY_ADMIN
            obj.save()
            return
        created = membership_grant(user=obj.user, company=obj.company, office=obj.office)
        obj.pk = created.pk
        obj.role = created.role
        obj._state.adding = False


# The admin audit trail ---------------------------------------------------------------


@admin.register(LogEntry)
class LogEntryAdmin(ReadOnlyAdmin):
    list_display = ("action_time", "user", "action", "content_type", "object_repr", "message")
    list_filter = (
        "action_flag",
        ("content_type", admin.RelatedOnlyFieldListFilter),
        ("user", admin.RelatedOnlyFieldListFilter),
    )
    list_select_related = ("user", "content_type")
    search_fields = ("object_repr", "change_message", "user__username")
    date_hierarchy = "action_time"
    fields = ("action_time", "user", "action", "content_type", "object_link", "message")
    readonly_fields = ("action", "object_link", "message")

    @admin.display(description="Action", ordering="action_flag")
    def action(self, obj):
        if obj.is_addition():
            return "Added"
        if obj.is_deletion():
            return "Deleted"
        return "Changed"

    @admin.display(description="Change")
    def message(self, obj):
        return obj.get_change_message()

    @admin.display(description="Object")
    def object_link(self, obj):
        url = obj.get_admin_url() if not obj.is_deletion() else ""
        if url:
            return format_html('<a href="{}">{}</a>', url, obj.object_repr)
        return obj.object_repr


from offices import admin_users  # noqa: E402, F401  (user accounts and lockouts: own module)
from offices.team import admin as team_admin  # noqa: E402, F401  (registers invites, audit)
