"""API keys: creating, revoking and checking them (`Authorization: Bearer <key>`).

A key reads `ucp_<prefix>.<secret>`. The prefix finds the row, the SHA-256 digest of the
whole key is compared in constant time, and only the digest is stored."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from ninja.security import HttpBearer

from core.errors import Conflict, ValidationFailed
from offices.models import Company
from usage.models import ApiKey

KEY_PATTERN = re.compile(r"^ucp_([0-9a-f]{12})\.([A-Za-z0-9_-]{43})$")
# Recording every request's time would turn each read into a write; once a minute is
# enough to tell a live key from a forgotten one.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_key_create(*, company: Company, name: str, actor=None) -> tuple[ApiKey, str]:
    """A new key for `company`; returns the row and the key, which is never shown again."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValidationFailed(
            "name: give the key a name of at most 100 characters.",
            [{"field": "name", "message": "Give the key a name of at most 100 characters."}],
        )
    for _ in range(5):
        prefix = secrets.token_hex(6)
        key = f"ucp_{prefix}.{secrets.token_urlsafe(32)}"
        try:
            with transaction.atomic():
                api_key = ApiKey.objects.create(
                    company=company,
                    name=name,
                    prefix=prefix,
                    key_hash=_digest(key),
                    created_by=actor,
                )
        except IntegrityError:  # a prefix collision: astronomically rare, just draw again
            continue
        return api_key, key
    raise Conflict("Could not draw a unique key prefix; try again.")


def api_key_revoke(*, api_key: ApiKey, actor=None) -> ApiKey:
    """Revoke a key for good; revoking it again keeps the first revocation time."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    api_key.refresh_from_db(fields=["revoked_at"])
    return api_key


def _active_key(prefix: str) -> ApiKey | None:
    """The unrevoked key with this prefix, its company loaded. On PostgreSQL one
    hand-written query: building the ORM's cost a quarter of a single event's request."""
    if connection.vendor != "postgresql":
        return (
            ApiKey.objects.select_related("company")
            .filter(prefix=prefix, revoked_at__isnull=True)
            .first()
        )
    key_fields, company_fields = ApiKey._meta.concrete_fields, Company._meta.concrete_fields
    columns = [f"k.{f.column}" for f in key_fields] + [f"c.{f.column}" for f in company_fields]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(columns)} FROM {ApiKey._meta.db_table} AS k "  # noqa: S608
            f"JOIN {Company._meta.db_table} AS c ON c.id = k.company_id "
            "WHERE k.prefix = %s AND k.revoked_at IS NULL",
            [prefix],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    alias, n = connection.alias, len(key_fields)
    api_key = ApiKey.from_db(alias, [f.attname for f in key_fields], row[:n])
    company = Company.from_db(alias, [f.attname for f in company_fields], row[n:])
    ApiKey._meta.get_field("company").set_cached_value(api_key, company)
    return api_key


def api_key_authenticate(key: str) -> ApiKey | None:
    """The active key matching `key`, with its company loaded, or None."""
    match = KEY_PATTERN.match(key or "")
    if not match:
        return None
    api_key = _active_key(match.group(1))
    if api_key is None or not hmac.compare_digest(api_key.key_hash, _digest(key)):
        return None
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        ApiKey.objects.filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION),
            pk=api_key.pk,
        ).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


class ApiKeyAuth(HttpBearer):
    """Bearer auth for the API; `request.auth` becomes the ApiKey (and so its company)."""

    def authenticate(self, request, token: str) -> ApiKey | None:
        return api_key_authenticate(token.strip())
