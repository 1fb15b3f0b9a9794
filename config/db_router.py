"""Send usage history and export reads to a read replica, everything else to the primary.

Active only when settings.DATABASES has an alias "replica" (e.g. from DATABASE_REPLICA_URL);
without it every query goes to "default", exactly as if there were no router.

Which reads are "history": reads of the usage records made outside a transaction, i.e. the
usage pages, the CSV export and the read API. Ingestion reads the same table inside its
transaction (to find ids already charged) and must see the primary, never a lagging copy,
so a read inside an atomic block of "default" stays on "default". Writes always go to
"default". See docs/scaling.md.
"""

from __future__ import annotations

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections

REPLICA = "replica"
HISTORY_MODELS = frozenset({"usage.usagerecord"})


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


class HistoryReplicaRouter:
    """Reads of usage history → "replica" (when configured); all else → "default"."""

    def db_for_read(self, model, **hints):
        if model._meta.label_lower not in HISTORY_MODELS or not replica_configured():
            return DEFAULT_DB_ALIAS
        if connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return DEFAULT_DB_ALIAS  # a write reads its own, current data
        return REPLICA

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # The replica is a copy of the primary: objects from either may be related.
        both = {obj1._state.db or DEFAULT_DB_ALIAS, obj2._state.db or DEFAULT_DB_ALIAS}
        return both <= {DEFAULT_DB_ALIAS, REPLICA} or None

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        # The replica receives the schema by replication, never by migrate.
        return False if db == REPLICA else None
