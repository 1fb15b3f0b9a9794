"""Admin registrations of the usage app."""

from usage import admin_api_keys  # noqa: F401
