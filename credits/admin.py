"""The credits admin: companies with their balances and pooling history, the pooling
toggle and Add credits pages; balances, ledger, allowances and the pooling audit, all
read-only.

Balances change only through the services (Add credits, the pooling toggle, usage), so
nobody — not even a superuser — adds, edits or deletes these rows here (SPEC §6.8)."""

import uuid

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from core.admin import ReadOnlyAdmin
from core.errors import DomainError
from core.money import ZERO
from credits.accounts import accounts_ensure, company_open, office_open
from credits.admin_forms import OFF, ON, AddCreditsForm, PoolingConfirmForm, PoolingReasonForm
from credits.models import Account, AccountKind, Allowance, EntryType, LedgerEntry, PoolingChange
from credits.periods import period_of
from credits.services import (
    POOLING_PERMISSION,
    credits_add,
    credits_adjust,
    funding_account_for,
    pooling_preview,
    pooling_set,
)
from offices import admin as offices_admin
from offices.admin_display import credits_column, local_time_column
from offices.models import Company, CreditKind, Office

ADD_CREDITS_PERMISSION = "credits.add_ledgerentry"


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
    list_display = ("__str__", "company", "kind", "office", "balance_credits", "updated_local")
    balance_credits = credits_column("balance", "balance")
    updated_local = local_time_column("updated_at", "updated")
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

    # The one thing care changes on a balance: its low-balance threshold override, on a
    # page of its own, through the money-controls service (credits.controls_admin).

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        if obj is not None and request.user.has_perm(controls_admin.THRESHOLD_PERMISSION):
            fields = (*fields, "threshold_tool")
        return fields

    @admin.display(description="Low-balance threshold")
    def threshold_tool(self, obj):
        return controls_admin.account_threshold_link(obj)

    def get_urls(self):
        return [
            path(
                "<path:object_id>/threshold/",
                self.admin_site.admin_view(self.threshold_view),
                name="credits_account_threshold",
            ),
            *super().get_urls(),
        ]

    def threshold_view(self, request, object_id):
        return controls_admin.account_threshold_view(self, request, object_id)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "created_local",
        "company",
        "account_label",
        "entry_type",
        "amount_credits",
        "balance_after_credits",
        "created_by",
        "memo",
        "reference",
    )
    created_local = local_time_column("created_at", "when")
    amount_credits = credits_column("amount", "amount")
    balance_after_credits = credits_column("balance_after", "balance after")
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


ALLOWANCE_MONEY = (
    "included",
    "used",
    "cost_total",
    "pool_drawn",
    "wallet_drawn",
    "ai_drawn",
    "uncovered",
)


@admin.register(Allowance)
class AllowanceAdmin(ReadOnlyAdmin):
    list_display = (
        "period",
        "company",
        "office",
        "kind",
        *(f"{name}_credits" for name in ALLOWANCE_MONEY),
        "events",
    )
    included_credits = credits_column("included", "included")
    used_credits = credits_column("used", "used")
    cost_total_credits = credits_column("cost_total", "cost")
    pool_drawn_credits = credits_column("pool_drawn", "pool drawn")
    wallet_drawn_credits = credits_column("wallet_drawn", "wallet drawn")
    ai_drawn_credits = credits_column("ai_drawn", "AI drawn")
    uncovered_credits = credits_column("uncovered", "uncovered")
    list_filter = ("kind", PeriodFilter, OverAllowanceFilter, "company", OfficeFilter)
    list_select_related = ("company", "office__company")
    search_fields = ("office__name", "office__slug", "company__name")


@admin.register(PoolingChange)
class PoolingChangeAdmin(ReadOnlyAdmin):
    list_display = (
        "created_local",
        "company",
        "state",
        "amount_moved_credits",
        "changed_by",
        "reason",
    )
    created_local = local_time_column("created_at", "when")
    amount_moved_credits = credits_column("amount_moved", "moved")
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


# Companies and offices, with their credits ------------------------------------------


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
class CompanyAdmin(offices_admin.CompanyAdmin):
    """A company with its credits: balances, pooling history, the pooling toggle (the
    only way `pooling_enabled` changes, SPEC §4) and Add credits."""

    list_display = ("name", "slug", "pooling_on", "office_count", "billing_timezone", "created_at")
    list_filter = ("pooling_enabled", "billing_timezone")
    readonly_fields = ("pooling_status", "balances", "created_at")
    fieldsets = (
        (None, {"fields": ("name", "slug", "billing_timezone")}),
        ("Usage", {"fields": ("late_event_window_days",)}),
        ("Credits", {"fields": ("pooling_status", "balances")}),
        (None, {"fields": ("created_at",)}),
    )
    # Belt and braces: even a future fieldset edit cannot put the flag on a form.
    exclude = ("pooling_enabled", "pooling_changed_at")

    def get_inlines(self, request, obj):
        inline = offices_admin.OfficeInline
        return [inline, PoolingChangeInline] if obj else [inline]

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return ((None, {"fields": self.editable_fields}),)
        return self.fieldsets

    # Display -----------------------------------------------------------------------

    @admin.display(description="Pooling", boolean=True, ordering="pooling_enabled")
    def pooling_on(self, obj):
        return obj.pooling_enabled

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
            self.late_window_save(request, obj, form)
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
        company = company_open(
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
                    office_open(
                        company=company,
                        name=row["name"],
                        slug=row["slug"],
                        plan=row["plan"],
                        actor=request.user,
                    )
                )
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
                office_open(
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


@admin.register(Office)
class OfficeAdmin(offices_admin.OfficeAdmin):
    office_create = staticmethod(office_open)  # every office gets its own wallet


from credits import controls_admin  # noqa: E402, F401  (registers the money-controls admin)
from credits.requests import admin as requests_admin  # noqa: E402, F401  (credit requests)
