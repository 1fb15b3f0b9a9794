"""The customer-care admin: companies with their offices, balances and pooling history,
the pooling toggle and Add credits pages, the catalog, memberships and the audit log.

`pooling_enabled` is never a form field here: it changes only through the two-step
pooling toggle, which calls credits.services.pooling_set (SPEC §4)."""

from __future__ import annotations

import uuid

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.admin.options import get_content_type_for_model
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core.errors import DomainError
from core.money import ZERO
from credits.admin import ReadOnlyAdmin, moves_html
from credits.admin_forms import OFF, ON, AddCreditsForm, PoolingConfirmForm, PoolingReasonForm
from credits.models import Account, AccountKind, Allowance, EntryType, LedgerEntry, PoolingChange
from credits.services import (
    POOLING_PERMISSION,
    accounts_ensure,
    credits_add,
    credits_adjust,
    funding_account_for,
    pooling_preview,
    pooling_set,
)
from offices.models import AddOn, Company, CreditKind, Membership, Office, OfficeAddOn, Plan, Role
from offices.services import company_create, membership_grant, office_addon_set, office_create
from usage.services import period_of

ADD_CREDITS_PERMISSION = "credits.add_ledgerentry"

admin.site.site_header = "Unified Credit Pooling — administration"
admin.site.site_title = "Unified Credit Pooling admin"
admin.site.index_title = "Customer care"


def log_pooling_change(*, user, company: Company, change: PoolingChange) -> LogEntry:
    """The admin audit trail's line for one pooling toggle (also used by the demo seeder)."""
    moved = "; ".join(f"{m['from']} → {m['to']}: {m['amount']}" for m in change.moves)
    message = (
        f"Pooling turned {'on' if change.enabled else 'off'}. Reason: {change.reason}"
        f" — moved {change.amount_moved} credits" + (f" ({moved})." if moved else ".")
    )
    # Built by hand so the entry takes the (possibly simulated) current time: LogEntry's
    # own default captured timezone.now at import.
    return LogEntry.objects.create(
        user_id=user.pk,
        content_type_id=get_content_type_for_model(company).pk,
        object_id=str(company.pk),
        object_repr=str(company)[:200],
        action_flag=CHANGE,
        change_message=message,
        action_time=timezone.now(),
    )


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


class PoolingChangeInline(admin.TabularInline):
    model = PoolingChange
    verbose_name_plural = "pooling history"
    fields = ("created_at", "state", "reason", "amount_moved", "moves_table", "changed_by")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("changed_by")

    @admin.display(description="Pooling")
    def state(self, obj):
        return "Turned on" if obj.enabled else "Turned off"

    @admin.display(description="Moves")
    def moves_table(self, obj):
        return moves_html(obj.moves)


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "pooling_on", "office_count", "billing_timezone", "created_at")
    list_filter = ("pooling_enabled", "billing_timezone")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    show_full_result_count = False
    readonly_fields = ("pooling_status", "balances", "created_at")
    fieldsets = (
        (None, {"fields": ("name", "slug", "billing_timezone")}),
        ("Credits", {"fields": ("pooling_status", "balances")}),
        (None, {"fields": ("created_at",)}),
    )
    # Belt and braces: even a future fieldset edit cannot put the flag on a form.
    exclude = ("pooling_enabled", "pooling_changed_at")
    editable_fields = ("name", "slug", "billing_timezone")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(num_offices=Count("offices"))

    def get_inlines(self, request, obj):
        return [OfficeInline, PoolingChangeInline] if obj else [OfficeInline]

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return ((None, {"fields": self.editable_fields}),)
        return self.fieldsets

    def has_add_permission(self, request):
        # A company is born with its primary office, so adding one needs both rights.
        return super().has_add_permission(request) and request.user.has_perm("offices.add_office")

    def has_delete_permission(self, request, obj=None):
        # Accounts and ledger entries protect a company; deleting is never possible.
        return False

    # Display -----------------------------------------------------------------------

    @admin.display(description="Pooling", boolean=True, ordering="pooling_enabled")
    def pooling_on(self, obj):
        return obj.pooling_enabled

    @admin.display(description="Offices", ordering="num_offices")
    def office_count(self, obj):
        return obj.num_offices

    @admin.display(description="Pooling")
    def pooling_status(self, obj):
        if obj is None or obj.pk is None:
            return "Off"
        if obj.pooling_enabled:
            text = "On — overage of every office is drawn from the company pool"
        else:
            text = "Off — each office pays its overage from its own wallet"
        if obj.pooling_changed_at:
            when = timezone.localtime(obj.pooling_changed_at).strftime("%Y-%m-%d %H:%M %Z")
            return format_html("<strong>{}</strong> (since {})", text, when)
        return format_html("<strong>{}</strong>", text)

    @admin.display(description="Balances")
    def balances(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        accounts = Account.objects.filter(company=obj).select_related("office")
        order = {AccountKind.POOL: 0, AccountKind.WALLET: 1, AccountKind.AI_AGENT: 2}
        rows = []
        for account in sorted(
            accounts,
            key=lambda a: (order[a.kind], not (a.office and a.office.is_primary), str(a.office)),
        ):
            if account.kind == AccountKind.POOL:
                label = "Company pool"
                note = "funds standard overage" if obj.pooling_enabled else "unused (pooling off)"
            elif account.kind == AccountKind.WALLET:
                label = f"{account.office.name} wallet"
                note = "unused (pooling on)" if obj.pooling_enabled else "funds its overage"
            else:
                label = "AI agent credits (primary office)"
                note = "funds AI agent overage of every office"
            rows.append((label, f"{account.balance:,}", note))
        period = period_of(timezone.now(), obj.tz)
        uncovered = sum(
            Allowance.objects.filter(company=obj, period=period).values_list(
                "uncovered", flat=True
            ),
            ZERO,
        )
        rows.append((f"Uncovered overage in {period:%B %Y}", f"{uncovered:,}", "not funded"))
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html(
            "<table><thead><tr><th>Balance</th><th>Credits</th><th></th></tr></thead>"
            "<tbody>{}</tbody></table>",
            body,
        )

    # Saving ------------------------------------------------------------------------

    def save_model(self, request, obj, form, change):
        if change:
            # Only the edited columns: a concurrent pooling toggle must not be undone
            # by writing back the flag as it was when this page was loaded.
            fields = [f for f in form.changed_data if f in self.editable_fields]
            if fields:
                obj.save(update_fields=fields)
        # A new company is created in save_related, together with its offices.

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)
            accounts_ensure(company=form.instance)
            return
        obj = form.instance
        office_formset = next(fs for fs in formsets if fs.model is Office)
        rows = [
            f.cleaned_data
            for f in office_formset.forms
            if f.cleaned_data and not f.cleaned_data.get("DELETE")
        ]
        primary = next(r for r in rows if r["is_primary"])
        company = company_create(
            name=obj.name,
            slug=obj.slug,
            billing_timezone=obj.billing_timezone,
            primary_office_name=primary["name"],
            primary_office_slug=primary["slug"],
            plan=primary["plan"],
            actor=request.user,
        )
        created = [Office.objects.get(company=company, is_primary=True)]
        for row in rows:
            if row is not primary:
                created.append(
                    office_create(
                        company=company,
                        name=row["name"],
                        slug=row["slug"],
                        plan=row["plan"],
                        actor=request.user,
                    )
                )
        accounts_ensure(company=company)
        # The admin goes on to log and redirect with the form's instance.
        obj.pk = company.pk
        obj.created_at = company.created_at
        obj._state.adding = False
        office_formset.new_objects = created
        office_formset.changed_objects = []
        office_formset.deleted_objects = []

    def save_formset(self, request, form, formset, change):
        if formset.model is not Office:
            return super().save_formset(request, form, formset, change)
        offices = formset.save(commit=False)
        # Demote the old primary office before promoting the new one, so the database's
        # "one primary office" constraint holds after every statement.
        existing = sorted((o for o in offices if o.pk), key=lambda o: o.is_primary)
        for office in existing:
            office.save(update_fields=["name", "slug", "plan", "is_primary"])
        created = []
        for office in (o for o in offices if not o.pk):
            created.append(
                office_create(
                    company=form.instance,
                    name=office.name,
                    slug=office.slug,
                    plan=office.plan,
                    is_primary=office.is_primary,
                    actor=request.user,
                )
            )
        formset.new_objects = created

    # Pages -------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/pooling/",
                view(self.pooling_view),
                name="{}_{}_pooling".format(*info),
            ),
            path(
                "<path:object_id>/credits/",
                view(self.add_credits_view),
                name="{}_{}_credits".format(*info),
            ),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_change_pooling": request.user.has_perm(POOLING_PERMISSION),
            "can_add_credits": request.user.has_perm(ADD_CREDITS_PERMISSION),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _company_for(self, request, object_id, permission: str) -> Company:
        company = self.get_object(request, unquote(object_id))
        if company is None:
            raise Http404("No such company.")
        if not (
            self.has_view_or_change_permission(request, company)
            and request.user.has_perm(permission)
        ):
            raise PermissionDenied
        return company

    def _page(self, request, company, title, **context):
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": company,
            "company": company,
            "title": title,
            "subtitle": None,
            "change_url": reverse("admin:offices_company_change", args=[company.pk]),
            "media": self.media,
            **context,
        }

    def pooling_view(self, request, object_id):
        """Two steps: the reason, then a confirmation listing every amount that moves."""
        company = self._company_for(request, object_id, POOLING_PERMISSION)
        change_url = reverse("admin:offices_company_change", args=[company.pk])
        target = not company.pooling_enabled
        verb = "on" if target else "off"
        title = f"Turn pooling {verb} for {company}"
        status = 200
        if request.method == "POST" and "confirm" in request.POST:
            confirm = PoolingConfirmForm(request.POST)
            if confirm.is_valid():
                return self._pooling_apply(request, company, confirm, change_url)
            form, status = PoolingReasonForm(request.POST), 400
        elif request.method == "POST":
            form = PoolingReasonForm(request.POST)
            if form.is_valid() and form.enabled == target:
                return self._pooling_confirm_page(request, company, form, target)
            if form.is_valid():
                # The state changed since this form was shown: ask again for the new direction.
                self.message_user(
                    request,
                    f"Pooling was changed meanwhile and is now {'off' if target else 'on'}; "
                    "check the direction and continue again.",
                    messages.WARNING,
                )
                form = PoolingReasonForm(
                    initial={"reason": form.cleaned_data["reason"], "target": ON if target else OFF}
                )
                status = 409
            else:
                status = 400
        else:
            form = PoolingReasonForm(initial={"target": ON if target else OFF})
        context = self._page(
            request,
            company,
            title,
            form=form,
            adminform=helpers.AdminForm(form, [(None, {"fields": ["reason", "target"]})], {}),
            errors=helpers.AdminErrorList(form, []) if form.is_bound else None,
            target=target,
        )
        return TemplateResponse(
            request, "admin/offices/company/pooling.html", context, status=status
        )

    def _pooling_confirm_page(self, request, company, form, target):
        verb = "on" if target else "off"
        moves = pooling_preview(company=company, enabled=target)
        ai = Account.objects.filter(company=company, kind=AccountKind.AI_AGENT).first()
        context = self._page(
            request,
            company,
            f"Confirm: turn pooling {verb} for {company}",
            form=PoolingConfirmForm(initial=form.cleaned_data),
            reason=form.cleaned_data["reason"],
            moves=moves,
            total=sum((m.amount for m in moves), ZERO),
            target=target,
            ai_balance=ai.balance if ai else None,
        )
        return TemplateResponse(request, "admin/offices/company/pooling_confirm.html", context)

    def _pooling_apply(self, request, company, form, change_url):
        reason = form.cleaned_data["reason"]
        try:
            change = pooling_set(
                company=company, enabled=form.enabled, actor=request.user, reason=reason
            )
        except DomainError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(change_url)
        if change is None:
            state = "on" if form.enabled else "off"
            self.message_user(
                request, f"Pooling was already {state} for {company}; nothing changed.", "warning"
            )
            return HttpResponseRedirect(change_url)
        log_pooling_change(user=request.user, company=company, change=change)
        verb = "on" if change.enabled else "off"
        self.message_user(request, f"Pooling turned {verb} for {company}.", messages.SUCCESS)
        return HttpResponseRedirect(change_url)

    def add_credits_view(self, request, object_id):
        """Purchase, grant or adjust credits through the credit services, with a memo."""
        company = self._company_for(request, object_id, ADD_CREDITS_PERMISSION)
        change_url = reverse("admin:offices_company_change", args=[company.pk])
        status = 200
        if request.method == "POST":
            form = AddCreditsForm(request.POST, company=company)
            if form.is_valid():
                entry = self._credits_apply(request, company, form)
                if entry is not None:
                    return HttpResponseRedirect(change_url)
            status = 400
        else:
            form = AddCreditsForm(company=company, initial={"idempotency_key": uuid.uuid4().hex})
        fields = ["entry_type", "kind", "office", "amount", "memo", "idempotency_key"]
        context = self._page(
            request,
            company,
            f"Add credits to {company}",
            form=form,
            adminform=helpers.AdminForm(form, [(None, {"fields": fields})], {}),
            errors=helpers.AdminErrorList(form, []) if form.is_bound else None,
        )
        return TemplateResponse(
            request, "admin/offices/company/add_credits.html", context, status=status
        )

    def _credits_apply(self, request, company, form) -> LedgerEntry | None:
        data = form.cleaned_data
        key = data["idempotency_key"]
        repeated = bool(key) and (
            LedgerEntry.objects.filter(company=company, idempotency_key=key).exists()
        )
        try:
            if data["entry_type"] == EntryType.ADJUSTMENT:
                account = funding_account_for(
                    company=company, kind=data["kind"], office=data["office"]
                )
                entry = credits_adjust(
                    account=account, amount=data["amount"], memo=data["memo"], actor=request.user
                )
            else:
                entry = credits_add(
                    company=company,
                    amount=data["amount"],
                    actor=request.user,
                    entry_type=data["entry_type"],
                    kind=data["kind"],
                    office=data["office"],
                    memo=data["memo"],
                    idempotency_key=key,
                )
        except DomainError as exc:
            form.add_domain_error(exc)
            return None
        entry = LedgerEntry.objects.select_related("account__office", "account__company").get(
            pk=entry.pk
        )
        url = reverse("admin:credits_ledgerentry_change", args=[entry.pk])
        if repeated:
            self.message_user(
                request,
                format_html(
                    'This form was already submitted: <a href="{}">entry #{}</a>; nothing added.',
                    url,
                    entry.pk,
                ),
                messages.WARNING,
            )
            return entry
        summary = (
            f"{entry.get_entry_type_display()} of {entry.amount:+,} "
            f"{CreditKind(entry.account.credit_kind).label} credits to {entry.account}"
        )
        self.log_change(request, company, f"Added credits: {summary}. Memo: {entry.memo}")
        self.message_user(
            request,
            format_html(
                'Recorded <a href="{}">entry #{}</a>: {}; balance now {}.',
                url,
                entry.pk,
                summary,
                f"{entry.balance_after:,}",
            ),
            messages.SUCCESS,
        )
        return entry


# Offices and the catalog ---------------------------------------------------------------


class OfficeAddOnInline(admin.TabularInline):
    model = OfficeAddOn
    extra = 0
    autocomplete_fields = ("addon",)


@admin.register(Office)
class OfficeAdmin(admin.ModelAdmin):
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
        created = office_create(
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
