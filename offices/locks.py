"""The company row lock, taken first by every write that touches a company's balances.

Lock order everywhere: company row → accounts in pk order → allowance rows in pk order.
Usage takes the company row in SHARE mode (many batches at once), the pooling toggle
takes it exclusively, so a batch sees the pooling state either before or after a toggle.

On PostgreSQL a transaction-scoped advisory lock on the company is taken first, in the
same mode. Row share locks let new sharers in while an exclusive locker waits, so steady
usage traffic could keep the pooling toggle waiting forever; advisory locks queue fairly
(a new sharer waits behind a waiting exclusive request).
"""

from __future__ import annotations

from django.db import connection

from offices.models import Company

COMPANY_LOCK_SPACE = 7301  # first key of pg_advisory_xact_lock(int, int): "company"
EXCLUSIVE_LOCK_SQL = "SELECT pg_advisory_xact_lock(%s, %s)"
# The shared case in one round trip: the advisory lock is a filter on the company row, and
# a scan's filters run before LockRows (the plan's top node) takes the row lock, so the
# order stays advisory lock → row lock.
SHARED_LOCKS_SQL = (
    f"SELECT c.* FROM {Company._meta.db_table} AS c WHERE c.id = %s "  # noqa: S608
    "AND pg_advisory_xact_lock_shared(%s, %s)::text = '' FOR SHARE OF c"
)


def lock_company(company_id: int, *, exclusive: bool) -> Company:
    """The company row, locked (see above), as it is now."""
    if connection.vendor != "postgresql":
        # SQLite ignores row locks; its IMMEDIATE transactions already serialize writers.
        return Company.objects.select_for_update().get(pk=company_id)
    if exclusive:
        with connection.cursor() as cursor:
            cursor.execute(EXCLUSIVE_LOCK_SQL, [COMPANY_LOCK_SPACE, company_id])
        return Company.objects.select_for_update().get(pk=company_id)
    rows = list(Company.objects.raw(SHARED_LOCKS_SQL, [company_id, COMPANY_LOCK_SPACE, company_id]))
    if not rows:
        raise Company.DoesNotExist(company_id)
    return rows[0]
