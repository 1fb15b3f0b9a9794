"""Process-level faults: gunicorn's worker is killed (SIGKILL) in the middle of a
1000-event batch, inside the batch's transaction, and the client sends the batch again.

Black box: the test sees only HTTP and the database. It holds the worker at a chosen
point of the transaction from the database side, without a hook in the portal:
- a statement trigger on the usage records table waits while the batch's COPY runs;
- a statement trigger on the ledger table waits while the batch writes its ledger
  entries (after the COPY, before the commit);
- a transaction of the test holds the pool's row lock, so the batch waits for it.
The waiting is seen in pg_stat_activity; then the worker is killed, the hold released,
and PostgreSQL rolls back what the dead worker began. The batch must have been charged
fully or not at all, the re-sent batch exactly once, and check_ledger must find nothing."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import requests
from django.conf import settings
from django.db import connection

from core.checks import ledger_violations
from credits.models import Account, AccountKind, LedgerEntry
from credits.services import credits_purchase, pooling_set
from usage.api_auth import api_key_create
from usage.models import UsageRecord

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="triggers and row locks"),
]

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 1000
GATE = "test_fault_gate"  # a table of the test's own: open = true lets a held statement go


def database_url() -> str:
    db = settings.DATABASES["default"]
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            # the parent pid is the 2nd field after the parenthesised command name
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def wait_for(what: str, probe, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class Gunicorn:
    """One gunicorn worker serving the test database (its master restarts a killed one)."""

    def __init__(self):
        self.port = free_port()
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings.test",
            DATABASE_URL=database_url(),
            CONN_MAX_AGE="0",
            PYTHONWARNINGS="ignore",
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi:application",
             "--workers", "1", "--bind", f"127.0.0.1:{self.port}", "--timeout", "120",
             "--log-level", "critical"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.ready()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ready(self) -> None:
        def answers():
            assert self.proc.poll() is None, "gunicorn exited"
            try:
                return requests.get(f"{self.url}/api/openapi.json", timeout=2).ok
            except requests.RequestException:
                return False

        wait_for("gunicorn to serve", answers)

    def worker(self) -> int:
        (pid,) = wait_for("one gunicorn worker", lambda: children(self.proc.pid))
        return pid

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def server(django_db_setup):
    gunicorn = Gunicorn()
    yield gunicorn
    gunicorn.stop()


def post_batch(server: Gunicorn, key: str, events: list[dict]) -> requests.Response:
    return requests.post(
        f"{server.url}/api/v1/usage-events",
        data=json.dumps({"events": events}),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=60,
    )


def the_batch(case: str) -> list[dict]:
    """1000 events of the three offices: allowances run out, wallets or the pool pay,
    AI conversations draw the AI account, some go uncovered."""
    moment = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()
    offices, services = ("hq", "austin", "berlin"), ("sms", "call_international", "ai_agent")
    return [
        {
            "id": f"{case}-{i}",
            "office": offices[i % 3],
            "service": services[i % 7 % 3],
            "quantity": str(Decimal(1 + i % 5) / 4),
            "occurred_at": moment,
        }
        for i in range(EVENTS)
    ]


def snapshot(company) -> dict:
    return {
        "balances": dict(Account.objects.filter(company=company).values_list("pk", "balance")),
        "entries": LedgerEntry.objects.filter(company=company).count(),
        "records": UsageRecord.objects.filter(company=company).count(),
    }


SESSIONS_SQL = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
    " AND pid <> pg_backend_pid() AND state = 'active' AND "
)


def backend(where: str):
    """The worker's database session when it is at `where`, else None."""
    with connection.cursor() as cursor:
        cursor.execute(SESSIONS_SQL + where)  # noqa: S608
        row = cursor.fetchone()
    return row and row[0]


def backend_gone(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone() is None


# Identifiers in this module's SQL are its own constants and model table names.
HOLD_FUNCTION = f"""
CREATE OR REPLACE FUNCTION {GATE}_hold() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..1200 LOOP  -- at most a minute
        EXIT WHEN (SELECT open FROM {GATE});
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN NULL;
END $$"""  # noqa: S608


class StatementHold:
    """Holds the first INSERT or COPY into `table` (a BEFORE ... FOR EACH STATEMENT
    trigger that waits for the gate to open); `where` finds the held session."""

    def __init__(self, table: str, where: str = ""):
        self.table = table
        self.where = "wait_event = 'PgSleep'" + where

    def __enter__(self):
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {GATE}")
            cursor.execute(f"CREATE TABLE {GATE} (open boolean NOT NULL)")
            cursor.execute(f"INSERT INTO {GATE} VALUES (false)")  # noqa: S608
            cursor.execute(HOLD_FUNCTION)
            cursor.execute(
                f"CREATE TRIGGER {GATE}_hold BEFORE INSERT ON {self.table}"
                f" FOR EACH STATEMENT EXECUTE FUNCTION {GATE}_hold()"
            )
        return self

    def release(self):
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {GATE} SET open = true")  # noqa: S608

    def __exit__(self, *exc):
        self.release()
        with connection.cursor() as cursor:
            # waits (lock_timeout aside) until no transaction uses the table any more
            cursor.execute(f"DROP TRIGGER IF EXISTS {GATE}_hold ON {self.table}")
            cursor.execute(f"DROP FUNCTION IF EXISTS {GATE}_hold()")
            cursor.execute(f"DROP TABLE IF EXISTS {GATE}")


class RowLockHold:
    """Another transaction holding a row lock of `model`'s table, until released."""

    def __init__(self, model, pk: int):
        self.table, self.pk = model._meta.db_table, pk

    def __enter__(self):
        self.conn = psycopg.connect(database_url())
        # the session that waits for this very lock
        self.where = f"{self.conn.info.backend_pid} = ANY(pg_blocking_pids(pid))"
        sql = f"SELECT 1 FROM {self.table} WHERE id = %s FOR UPDATE"  # noqa: S608
        self.conn.execute(sql, [self.pk])
        return self

    def release(self):
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()

    def __exit__(self, *exc):
        self.release()


def during_copy(company):
    return StatementHold(UsageRecord._meta.db_table, " AND query ~* '^COPY '")


def during_ledger_insert(company):
    return StatementHold(LedgerEntry._meta.db_table)


def waiting_for_the_pool_row(company):
    return RowLockHold(Account, Account.objects.get(company=company, kind=AccountKind.POOL).pk)


KILL_POINTS = {
    "during the COPY of the records": (during_copy, False),
    "during the COPY, pooling on": (during_copy, True),
    "writing the ledger entries after the COPY": (during_ledger_insert, False),
    "waiting for the pool's row lock": (waiting_for_the_pool_row, True),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_a_worker_killed_inside_a_batch_leaves_it_all_or_nothing_and_a_resend_charges_once(
    server, company, care, point
):
    # given: funded wallets (or, pooling on, a funded pool) and a 1000-event batch
    for slug in ("hq", "austin", "berlin"):
        office = company.offices.get(slug=slug)
        credits_purchase(company=company, amount="40", office=office, actor=care)
    credits_purchase(company=company, amount="30", kind="ai_agent", actor=care)
    hold_at, pooling = KILL_POINTS[point]
    if pooling:
        pooling_set(company=company, enabled=True, actor=care, reason="fault test")
    _, key = api_key_create(company=company, name="fault test")
    events = the_batch(f"kill{company.pk}")
    before = snapshot(company)
    hold = hold_at(company)

    # when: the batch is sent, and its worker killed where the hold keeps it
    with hold:
        sender = threading.Thread(target=lambda: post_batch_quietly(server, key, events))
        sender.start()
        pid = wait_for(f"the batch {point}", lambda: backend(hold.where))
        os.kill(server.worker(), signal.SIGKILL)
        hold.release()
        wait_for("PostgreSQL to end the dead worker's session", lambda: backend_gone(pid))
        sender.join(timeout=60)

    # then: the batch was charged fully or not at all
    charged = UsageRecord.objects.filter(company=company).count() - before["records"]
    assert charged in (0, EVENTS)
    if charged == 0:
        assert snapshot(company) == before

    # when: the client sends the same batch again, to the worker gunicorn started anew
    server.ready()
    response = post_batch(server, key, events)

    # then: every event is charged exactly once, and the ledger is sound
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["events"]) == EVENTS
    assert sum(e["duplicate"] for e in body["events"]) == charged
    records = UsageRecord.objects.filter(company=company, external_id__in=[e["id"] for e in events])
    assert records.count() == EVENTS
    funded = sum((r.pool_part + r.wallet_part + r.ai_part for r in records), Decimal(0))
    after = snapshot(company)
    assert sum(before["balances"].values()) - sum(after["balances"].values()) == funded > 0
    assert ledger_violations([company.pk]) == []
    print(f"kill {point}: charged before the re-send {charged}, funded {funded}")


def post_batch_quietly(server, key, events):
    # The worker dies while this request is in flight: the connection breaks.
    with contextlib.suppress(requests.RequestException):
        post_batch(server, key, events)
