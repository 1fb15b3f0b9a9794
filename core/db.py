"""Row locks and retries shared by every write that touches balances.

Lock order everywhere: company row → accounts in pk order → allowance rows in pk order.
Usage takes the company row in SHARE mode (many batches at once), the pooling toggle
takes it exclusively, so a batch sees the pooling state either before or after a toggle.

On PostgreSQL a transaction-scoped advisory lock on the company is taken first, in the
same mode. Row share locks let new sharers in while an exclusive locker waits, so steady
usage traffic could keep the pooling toggle waiting forever; advisory locks queue fairly
(a new sharer waits behind a waiting exclusive request).
"""

from __future__ import annotations

import functools
import random
import time

from django.db import IntegrityError, OperationalError, connection

RETRY_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected
COMPANY_LOCK_SPACE = 7301  # first key of pg_advisory_xact_lock(int, int): "company"
EXCLUSIVE_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s, %s)"
# The shared case in one round trip: the advisory lock is a filter on the company row, and
# a scan's filters run before LockRows (the plan's top node) takes the row lock, so the
# order stays advisory lock → row lock. `columns` may add output columns read in the
# same statement (usage reads the ids already charged).
SHARED_LOCKS_SQL = (
    "SELECT c.*{columns} FROM offices_company AS c WHERE c.id = %s "
    "AND pg_advisory_xact_lock_shared(%s, %s)::text = '' FOR SHARE OF c"
)


def lock_company(company_id: int, *, exclusive: bool, columns: str = "", params=()):
    """The company row, locked (see above). On PostgreSQL in shared mode, `columns` (SQL
    after `c.*`, with `params`) become attributes of the returned company."""
    from offices.models import Company

    if connection.vendor != "postgresql":
        # SQLite ignores row locks; its IMMEDIATE transactions already serialize writers.
        return Company.objects.select_for_update().get(pk=company_id)
    if exclusive:
        with connection.cursor() as cursor:
            cursor.execute(EXCLUSIVE_LOCK_SQL, [COMPANY_LOCK_SPACE, company_id])
        return Company.objects.select_for_update().get(pk=company_id)
    sql = SHARED_LOCKS_SQL.format(columns=columns)
    rows = list(Company.objects.raw(sql, [*params, company_id, COMPANY_LOCK_SPACE, company_id]))
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
