"""Send usage history and export reads to a read replica, everything else to the primary.

Active only when settings.DATABASES has an alias "replica" (e.g. from DATABASE_REPLICA_URL);
without it every query goes to "default", exactly as if there were no router.

Which reads are "history": reads of the usage records made outside a transaction, i.e. the
usage pages, the CSV export and the read API. Ingestion reads the same table inside its
transaction (to find ids already charged) and must see the primary, never a lagging copy,
so a read inside an atomic block of "default" stays on "default". Writes always go to
"default". Balances, allowances and everything else are read from "default": they are
few rows, and what a user acts on must not lag. The day rollups (UsageDay) are history
and follow the records; the history page reads its totals from the allowance rollups on
the records' server explicitly (usage/selectors.py), so its rows and totals come from the
same copy.

When the replica cannot be reached, history is read from "default" instead: the first
read that finds it down marks it down for REPLICA_RETRY_SECONDS (per process), so the
portal keeps answering at the cost of one failed connect (connect_timeout, 2 s by
default) per process and interval. See docs/scaling.md.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

REPLICA = "replica"
HISTORY_MODELS = frozenset({"usage.usagerecord", "usage.usageday"})
REPLICA_RETRY_SECONDS = 5.0

logger = logging.getLogger(__name__)
_down_lock = threading.Lock()
_down_until = 0.0  # time.monotonic() before which the replica is not tried again


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


def replica_mark_down(reason: object) -> None:
    global _down_until
    with _down_lock:
        was_up = time.monotonic() >= _down_until
        _down_until = time.monotonic() + REPLICA_RETRY_SECONDS
    if was_up:
        logger.warning("Read replica unavailable, reading history from the primary: %s", reason)


def replica_reset() -> None:
    """Forget that the replica was down (tests; or after a failover)."""
    global _down_until
    with _down_lock:
        _down_until = 0.0


def replica_available() -> bool:
    """Connected to the replica (or just connected now), and not marked down recently.
    The connection is this thread's own, so a query routed here right after uses it;
    with CONN_HEALTH_CHECKS a kept-alive connection is pinged once per request."""
    if time.monotonic() < _down_until:
        return False
    connection = connections[REPLICA]
    try:
        connection.close_if_health_check_failed()
        connection.ensure_connection()
    except DatabaseError as exc:
        connection.close()
        replica_mark_down(exc)
        return False
    return True


class HistoryReplicaRouter:
    """Reads of usage history → "replica" (when configured); all else → "default"."""

    def db_for_read(self, model, **hints):
        if model._meta.label_lower not in HISTORY_MODELS or not replica_configured():
            return DEFAULT_DB_ALIAS
        if connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return DEFAULT_DB_ALIAS  # a write reads its own, current data
        return REPLICA if replica_available() else DEFAULT_DB_ALIAS

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # The replica is a copy of the primary: objects from either may be related.
        both = {obj1._state.db or DEFAULT_DB_ALIAS, obj2._state.db or DEFAULT_DB_ALIAS}
        return both <= {DEFAULT_DB_ALIAS, REPLICA} or None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        # The replica receives the schema by replication, never by migrate.
        return False if db == REPLICA else None
