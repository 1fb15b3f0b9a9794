"""API keys in the admin: customer care creates (key shown once) and revokes them."""

from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils import timezone

from offices.admin_display import local_time_column
from usage.api_auth import api_key_create, api_key_revoke
from usage.models import ApiKey


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    # Status right after the name: on a narrow screen the last columns fall off the edge.
    list_display = [
        "name",
        "status",
        "company",
        "display_prefix",
        "created_local",
        "last_used_local",
    ]
    created_local = local_time_column("created_at", "created")
    last_used_local = local_time_column("last_used_at", "last used")
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "company__name", "company__slug"]
    list_select_related = ["company"]
    readonly_fields = ["display_prefix", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    @admin.display(description="status")
    def status(self, obj: ApiKey) -> str:
        return (
            "active" if obj.is_active else f"revoked {timezone.localtime(obj.revoked_at):%Y-%m-%d}"
        )

    @admin.display(description="key")
    def display_prefix(self, obj: ApiKey) -> str:
        return obj.display_prefix if obj.pk else "shown once, after saving"

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["company", "name"]
        return ["company", "name", *self.readonly_fields]

    def get_readonly_fields(self, request, obj=None):
        # A key never changes owner: that would hand one company's key to another.
        return [*self.readonly_fields, "company"] if obj else []

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        api_key, key = api_key_create(company=obj.company, name=obj.name, actor=request.user)
        obj.pk, obj.prefix, obj.created_at = api_key.pk, api_key.prefix, api_key.created_at
        obj._state.adding = False
        obj.new_key = key  # shown by response_add, never stored

    def response_add(self, request, obj, post_url_continue=None):
        # The key goes straight into this one page, not into a message cookie or the log.
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "api_key": obj,
            "key": obj.new_key,
            "title": "API key created",
        }
        response = TemplateResponse(request, "admin/usage/apikey/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead, so the audit trail keeps the key's prefix

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke(self, request, queryset):
        count = 0
        for api_key in queryset.filter(revoked_at__isnull=True):
            api_key_revoke(api_key=api_key, actor=request.user)
            count += 1
        self.message_user(request, f"Revoked {count} API key(s).", messages.SUCCESS)
