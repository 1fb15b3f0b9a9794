"""The shared company lock takes the advisory lock and the row lock in one statement on
PostgreSQL; the advisory lock must still come first (offices/locks.py)."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, connections, transaction

from offices.locks import COMPANY_LOCK_SPACE, lock_company

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="advisory locks are PostgreSQL"),
]


def test_a_shared_lock_waits_for_the_advisory_lock_without_holding_the_row(company):
    # given: a pooling toggle holds the company's advisory lock exclusively
    holder = connections.create_connection("default")
    prober = connections.create_connection("default")
    holder.set_autocommit(False)
    prober.set_autocommit(False)
    locked = threading.Event()

    def usage_batch():
        try:
            with transaction.atomic():
                company_row = lock_company(company.pk, exclusive=False)
                assert company_row.pk == company.pk
                locked.set()
        finally:
            connection.close()

    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s, %s)", [COMPANY_LOCK_SPACE, company.pk])
        # when: a usage batch asks for the shared locks
        thread = threading.Thread(target=usage_batch)
        thread.start()
        time.sleep(0.5)
        # then: it waits, and has not locked the company row meanwhile
        assert not locked.is_set()
        with prober.cursor() as cur:
            cur.execute(
                "SELECT id FROM offices_company WHERE id = %s FOR UPDATE NOWAIT", [company.pk]
            )
            assert cur.fetchone() == (company.pk,)
        prober.rollback()
        # and: once the toggle ends, the batch gets both locks
        holder.rollback()
        thread.join(10)
        assert locked.is_set()
    finally:
        holder.close()
        prober.close()
