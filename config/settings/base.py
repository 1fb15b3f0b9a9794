"""Settings shared by every environment; values come from the environment (django-environ)."""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

SECRET_KEY = env("SECRET_KEY", default="insecure-dev-key-change-me")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_tables2",
    "django_filters",
    "ninja",
    "axes",
    "csp",
    "django_tasks",
    "django_tasks_db",
    "core",
    "offices",
    "credits",
    "usage",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",
    "core.middleware.NoStoreMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def databases_from_env(default_url: str) -> dict:
    """DATABASES from DATABASE_URL (and DATABASE_REPLICA_URL, DATABASE_POOLER).

    * SQLite: IMMEDIATE makes it take its write lock at BEGIN, so two writers queue
      instead of failing half-way.
    * "replica" (optional): a streaming standby of the primary; usage history and export
      reads go there (config/db_router.py). A short connect timeout and a health check
      per request let the router fall back to the primary quickly when it is down. In
      tests it mirrors "default": the standby already holds the primary's test database
      by replication (and is read-only), so no test database is created or flushed on it.
    * DATABASE_POOLER=pgbouncer: PgBouncer in transaction mode sits in front; a session
      may move to another server connection after each transaction, so nothing may live
      longer than a transaction: no server-side (WITH HOLD) cursors, no prepared
      statements (Django's default; pinned here so an URL option cannot turn them on).
    """
    conn_max_age = env.int("CONN_MAX_AGE", default=0)
    pooler = env("DATABASE_POOLER", default="")
    if pooler not in ("", "pgbouncer"):
        raise ValueError(f"DATABASE_POOLER={pooler!r}: only 'pgbouncer' (or nothing) is known")
    databases = {"default": env.db("DATABASE_URL", default=default_url)}
    if env("DATABASE_REPLICA_URL", default=""):
        replica = env.db("DATABASE_REPLICA_URL")
        if replica["ENGINE"] == "django.db.backends.postgresql":
            replica.setdefault("OPTIONS", {}).setdefault(
                "connect_timeout", env.int("DATABASE_REPLICA_CONNECT_TIMEOUT", default=2)
            )
        replica["CONN_HEALTH_CHECKS"] = True
        replica["TEST"] = {"MIRROR": "default"}
        databases["replica"] = replica
    for alias in databases.values():
        alias["ATOMIC_REQUESTS"] = False
        alias["CONN_MAX_AGE"] = conn_max_age
        if alias["ENGINE"] == "django.db.backends.sqlite3":
            alias.setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
        if pooler == "pgbouncer":
            alias["DISABLE_SERVER_SIDE_CURSORS"] = True
            alias.setdefault("OPTIONS", {})["prepare_threshold"] = None
    return databases


DATABASES = databases_from_env(f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The covering indexes' INCLUDE columns serve PostgreSQL's index-only sums; SQLite
    # (the demo) builds the same indexes without them, which is all it needs.
    SILENCED_SYSTEM_CHECKS = ["models.W040"]
DATABASE_ROUTERS = ["config.db_router.HistoryReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True
USE_THOUSAND_SEPARATOR = False

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

DJANGO_TABLES2_TEMPLATE = "django_tables2/table.html"

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Login throttling (django-axes): lock an account/IP pair after repeated failures, so an
# attacker elsewhere cannot lock a user out. Behind proxies the pair needs the client's
# address, which only the proxies we trust may tell (core/client_ip.py).
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
AXES_CLIENT_IP_CALLABLE = "core.client_ip.client_ip"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"

# Content-Security-Policy (django-csp 4): everything comes from the portal itself.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Business bounds (SPEC §7): credits purchasable in one step, events per API batch,
# how far in the future an event may claim to have happened.
CREDITS_PURCHASE_MIN = env("CREDITS_PURCHASE_MIN", default="1")
CREDITS_PURCHASE_MAX = env("CREDITS_PURCHASE_MAX", default="1000000")
USAGE_BATCH_MAX = env.int("USAGE_BATCH_MAX", default=1000)
USAGE_MAX_FUTURE_SECONDS = env.int("USAGE_MAX_FUTURE_SECONDS", default=300)
USAGE_MAX_QUANTITY = env("USAGE_MAX_QUANTITY", default="1000000")

# Money controls (SPEC §8): alert notifications run after commit on a background queue
# (django-tasks with its database backend; worker: `manage.py db_worker`).
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
# E-mail: e.g. smtp+tls://user:pass@host:587 or consolemail:// (the default).
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="alerts@credit-pooling.invalid")
# Webhook deliveries: tries in all, and the first retry's delay (doubling after each).
WEBHOOK_MAX_ATTEMPTS = env.int("WEBHOOK_MAX_ATTEMPTS", default=5)
WEBHOOK_BACKOFF_SECONDS = env.float("WEBHOOK_BACKOFF_SECONDS", default=30)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=5)
RECHARGE_MONTHLY_LIMIT_MAX = 31

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"no_4xx_traceback": {"()": "core.logging.NoClientErrorTraceback"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "filters": ["no_4xx_traceback"]},
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="WARNING")},
    "loggers": {
        # Django's own console handler (DEBUG) would print every line a second time: its
        # records reach the root handler anyway. The dev server keeps its own format.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
    },
}
