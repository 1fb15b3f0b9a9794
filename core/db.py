"""Row locks and retries shared by every write that touches balances.

Lock order everywhere: company row → accounts in pk order → allowance rows in pk order.
Usage takes the company row in SHARE mode (many batches at once), the pooling toggle
takes it exclusively, so a batch sees the pooling state either before or after a toggle.
"""

from __future__ import annotations

import functools
import random
import time

from django.db import IntegrityError, OperationalError, connection

RETRY_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected


def lock_company(company_id: int, *, exclusive: bool):
    from offices.models import Company

    if exclusive or connection.vendor != "postgresql":
        # SQLite ignores row locks; its IMMEDIATE transactions already serialize writers.
        return Company.objects.select_for_update().get(pk=company_id)
    table = Company._meta.db_table
    rows = list(
        Company.objects.raw(f"SELECT * FROM {table} WHERE id = %s FOR SHARE", [company_id])  # noqa: S608
    )
    if not rows:
        raise Company.DoesNotExist(company_id)
    return rows[0]


def _sqlstate(exc: Exception) -> str | None:
    cause = exc.__cause__
    return getattr(cause, "sqlstate", None) or getattr(
        getattr(cause, "diag", None), "sqlstate", None
    )


def is_retryable(exc: Exception) -> bool:
    return isinstance(exc, OperationalError) and _sqlstate(exc) in RETRY_SQLSTATES


def retry_on_conflict(attempts: int = 8, *, retry_integrity: bool = False):
    """Run the wrapped atomic write again after a deadlock or serialization failure (and,
    when asked, a unique-key race), so callers never see those transient errors."""

    def decorator(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            for attempt in range(attempts):
                try:
                    return fn(*args, **kwargs)
                except (OperationalError, IntegrityError) as exc:
                    transient = is_retryable(exc) or (
                        retry_integrity and isinstance(exc, IntegrityError)
                    )
                    if not transient or attempt == attempts - 1:
                        raise
                    time.sleep(random.uniform(0, 0.01 * (attempt + 1)))
            raise AssertionError("unreachable")

        return wrapper

    return decorator
