"""Admin building blocks every app uses."""

from django.contrib import admin


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
