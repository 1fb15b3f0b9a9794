"""Tests: PostgreSQL by default (row locks, triggers and real concurrency need it)."""

from .base import *  # noqa: F403
from .base import databases_from_env, env

DEBUG = False
DATABASES = databases_from_env("postgres://postgres@127.0.0.1:5432/credit_pooling")

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
# Tests never run collectstatic: serve from the finders, and don't look for STATIC_ROOT.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
