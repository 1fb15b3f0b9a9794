"""Customer care's admin for money controls (SPEC §8): rules, caps, the company's
default threshold and webhook, and each balance's threshold override (a page of the
balance's admin) are saved through credits.controls (validated, audited); alerts,
webhook attempts and the change audit are read-only."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from core.admin import ReadOnlyAdmin
from core.errors import DomainError
from credits import controls
from credits.models import (
    Account,
    Alert,
    CompanyControls,
    ControlChange,
    PoolCap,
    RechargeRule,
    WebhookAttempt,
)


def _field_check(form, name, parse, **kwargs):
    value = form.cleaned_data.get(name)
    if value in (None, ""):
        return value
    try:
        return parse(value, **kwargs)
    except DomainError as error:
        form.add_error(name, error.message)
        return value


class RechargeRuleForm(forms.ModelForm):
    class Meta:
        model = RechargeRule
        fields = ("account", "threshold", "amount", "monthly_limit")

    def clean(self):
        data = super().clean()
        _field_check(self, "threshold", controls.parse_control_amount, field="threshold")
        _field_check(
            self,
            "amount",
            controls.parse_control_amount,
            field="amount",
            maximum=Decimal(settings.CREDITS_PURCHASE_MAX),
        )
        limit = data.get("monthly_limit")
        if limit is not None:
            try:
                controls.parse_monthly_limit(limit)
            except DomainError as error:
                self.add_error("monthly_limit", error.message)
        return data


class ServiceSaveMixin:
    """Saves go through the services; a refused rule shows as an error message."""

    def _run(self, request, call) -> None:
        try:
            call()
        except DomainError as error:
            messages.error(request, error.message)


@admin.register(RechargeRule)
class RechargeRuleAdmin(ServiceSaveMixin, admin.ModelAdmin):
    form = RechargeRuleForm
    list_display = ("__str__", "company", "threshold", "amount", "monthly_limit", "recharges")
    list_filter = ("company",)
    list_select_related = ("company", "account__office", "account__company")
    readonly_fields = ("company", "period", "recharges")
    actions = None

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "account") if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        saved = controls.recharge_rule_set(
            company=obj.account.company,
            account=obj.account,
            threshold=obj.threshold,
            amount=obj.amount,
            monthly_limit=obj.monthly_limit,
            actor=request.user,
        )
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        controls.recharge_rule_delete(company=obj.company, rule=obj, actor=request.user)


class PoolCapForm(forms.ModelForm):
    class Meta:
        model = PoolCap
        fields = ("office", "cap")

    def clean(self):
        data = super().clean()
        _field_check(self, "cap", controls.parse_control_amount, field="cap", allow_zero=True)
        return data


@admin.register(PoolCap)
class PoolCapAdmin(admin.ModelAdmin):
    form = PoolCapForm
    list_display = ("office", "company", "cap", "updated_at")
    list_filter = ("company",)
    list_select_related = ("office", "company")
    actions = None

    def get_readonly_fields(self, request, obj=None):
        return ("office",) if obj else ()

    def save_model(self, request, obj, form, change):
        saved = controls.pool_cap_set(
            company=obj.office.company, office=obj.office, cap=obj.cap, actor=request.user
        )
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        controls.pool_cap_set(company=obj.company, office=obj.office, cap=None, actor=request.user)


class CompanyControlsForm(forms.ModelForm):
    webhook_url = forms.URLField(required=False, max_length=500, assume_scheme="https")
    new_secret = forms.BooleanField(
        required=False, help_text="Make a new signing secret (shown once after saving)."
    )

    class Meta:
        model = CompanyControls
        fields = ("company", "alert_threshold", "webhook_url")

    def clean(self):
        data = super().clean()
        _field_check(self, "alert_threshold", controls.parse_control_amount, field="threshold")
        url = data.get("webhook_url")
        if url:
            try:
                controls.webhook_url_check(url)
            except DomainError as error:
                self.add_error("webhook_url", error.message)
        return data


@admin.register(CompanyControls)
class CompanyControlsAdmin(admin.ModelAdmin):
    form = CompanyControlsForm
    list_display = ("company", "alert_threshold", "webhook_url", "updated_at")
    list_select_related = ("company",)
    actions = None

    def get_readonly_fields(self, request, obj=None):
        return ("company",) if obj else ()

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        company, actor = obj.company, request.user
        controls.alert_threshold_set(company=company, value=obj.alert_threshold, actor=actor)
        before = CompanyControls.objects.get(company=company)
        url = form.cleaned_data.get("webhook_url") or ""
        if not url:
            if before.webhook_url:
                controls.webhook_clear(company=company, actor=actor)
        elif url != before.webhook_url or form.cleaned_data.get("new_secret"):
            secret = controls.webhook_set(company=company, url=url, actor=actor)
            messages.warning(
                request,
                f"Webhook signing secret (shown only now; give it to the customer): {secret}",
            )
        obj.pk = before.pk


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("attempt", "status", "response_code", "error", "next_try_at", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = (
        "__str__",
        "company",
        "kind",
        "office",
        "period",
        "threshold",
        "balance",
        "opened_at",
        "resolved_at",
    )
    list_filter = ("kind", "company")
    list_select_related = (
        "company",
        "account__office",
        "account__company",
        "office__company",
    )
    inlines = [WebhookAttemptInline]


@admin.register(WebhookAttempt)
class WebhookAttemptAdmin(ReadOnlyAdmin):
    list_display = (
        "alert",
        "company",
        "attempt",
        "status",
        "response_code",
        "next_try_at",
        "created_at",
    )
    list_filter = ("status", "company")
    list_select_related = ("company", "alert__account__office", "alert__account__company")
    # Read-only, but Django still builds the change form's fields: webhook URLs are HTTPS.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


@admin.register(ControlChange)
class ControlChangeAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "company", "setting", "old_value", "new_value", "changed_by")
    list_filter = ("company",)
    list_select_related = ("company", "changed_by")


# A balance's own low-balance threshold: whoever may change the company's low-balance
# settings (its default threshold, on CompanyControls) may change each balance's override.
THRESHOLD_PERMISSION = "credits.change_companycontrols"


class ThresholdOverrideForm(forms.Form):
    """Shape only; the value is checked by the service's own parser, so the admin, the
    portal and the API refuse the same inputs with the same words."""

    threshold = forms.CharField(
        label="Low-balance threshold",
        required=False,
        max_length=40,
        help_text="Credits. Leave empty to use the company's default threshold.",
    )

    def clean_threshold(self):
        value = self.cleaned_data["threshold"].strip()
        if not value:
            return None
        try:
            return controls.parse_control_amount(value, field="threshold")
        except DomainError as error:
            raise forms.ValidationError(error.message) from None


def account_threshold_view(model_admin: admin.ModelAdmin, request, object_id):
    """Set or clear one balance's low-balance threshold override through
    credits.controls.alert_threshold_set (audited; its alerts open or resolve at once)."""
    account = model_admin.get_object(request, unquote(object_id))
    if account is None:
        raise Http404("No such balance.")
    if not (
        model_admin.has_view_permission(request, account)
        and request.user.has_perm(THRESHOLD_PERMISSION)
    ):
        raise PermissionDenied
    change_url = reverse("admin:credits_account_change", args=[account.pk])
    status = 200
    if request.method == "POST":
        form = ThresholdOverrideForm(request.POST)
        if form.is_valid():
            value = form.cleaned_data["threshold"]
            try:
                controls.alert_threshold_set(
                    company=account.company, account=account, value=value, actor=request.user
                )
            except DomainError as error:
                form.add_error("threshold", error.message)
            else:
                shown = "the company default" if value is None else f"{value:,}"
                model_admin.log_change(
                    request, account, f"Low-balance threshold override set to {shown}."
                )
                model_admin.message_user(
                    request, f"Low-balance threshold of {account}: {shown}.", messages.SUCCESS
                )
                return HttpResponseRedirect(change_url)
        status = 400
    else:
        current = account.threshold_override
        form = ThresholdOverrideForm(initial={"threshold": "" if current is None else current})
    default = (
        CompanyControls.objects.filter(company=account.company_id)
        .values_list("alert_threshold", flat=True)
        .first()
    )
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "original": account,
        "account": account,
        "default_threshold": default,
        "title": f"Low-balance threshold of {account}",
        "subtitle": None,
        "change_url": change_url,
        "media": model_admin.media,
        "form": form,
        "adminform": helpers.AdminForm(form, [(None, {"fields": ["threshold"]})], {}),
        "errors": helpers.AdminErrorList(form, []) if form.is_bound else None,
    }
    return TemplateResponse(request, "admin/credits/account/threshold.html", context, status=status)


def account_threshold_link(account: Account):
    url = reverse("admin:credits_account_threshold", args=[account.pk])
    return format_html('<a href="{}">Change the low-balance threshold</a>', url)
