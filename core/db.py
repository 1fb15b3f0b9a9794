"""Retries shared by every write that touches balances (the locks: offices/locks.py)."""

from __future__ import annotations

import functools
import random
import time

from django.db import IntegrityError, OperationalError, connection

RETRY_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock detected

# The two ways a hot write path is written: through the ORM (any database) or with
# hand-written PostgreSQL. `dialect()` is the one place that picks; tests pass either.
ORM = "orm"
POSTGRESQL = "postgresql"


def dialect() -> str:
    """Which implementation of a hot write path the current database takes."""
    return POSTGRESQL if connection.vendor == "postgresql" else ORM


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
