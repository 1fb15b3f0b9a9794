"""The read-replica router against a real streaming standby (scripts/pg_replica.sh).

Run with the pair's URLs in the environment:

    scripts/pg_replica.sh start && eval "$(scripts/pg_replica.sh env)"
    .venv/bin/python -m pytest -m replica; scripts/pg_replica.sh stop

The standby holds the primary's test database by replication (the alias mirrors
"default", see config/settings/base.py). To prove which server answered, replay on the
standby is paused (pg_wal_replay_pause): what is written on the primary afterwards is
missing from whatever reads the standby, and present in whatever reads the primary.
"""

from __future__ import annotations

import csv
import io
import os
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from django.db import close_old_connections, connections
from django.test.utils import CaptureQueriesContext

from config import db_router
from credits.models import Account, AccountKind, EntryType, LedgerEntry
from credits.services import credits_purchase
from tests.api.conftest import ApiClient, usage_event
from tests.factories import company_admin, event
from usage.api_auth import api_key_create
from usage.models import Service, UsageRecord
from usage.services import usage_ingest

pytestmark = [
    pytest.mark.replica,
    pytest.mark.django_db(transaction=True, databases=["default", "replica"]),
]

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "pg_replica.sh"
CATCH_UP_SECONDS = 20


def _server(alias: str) -> psycopg.Connection:
    """An autocommit connection of our own to the server behind `alias` (its postgres
    database), so controlling replay never disturbs the connections under test."""
    s = connections[alias].settings_dict
    return psycopg.connect(
        host=s["HOST"], port=s["PORT"], user=s["USER"], dbname="postgres", autocommit=True
    )


class Standby:
    """Pause, resume, stop and start the standby; wait for it to replay the primary."""

    def __init__(self):
        self.paused = False
        self.stopped = False

    def _sql(self, alias: str, sql: str):
        with _server(alias) as conn:
            return conn.execute(sql).fetchone()[0]

    def catch_up(self) -> None:
        target = self._sql("default", "SELECT pg_current_wal_lsn()::text")
        deadline = time.monotonic() + CATCH_UP_SECONDS
        with _server(REPLICA_ALIAS) as conn:
            while True:
                done = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target]
                ).fetchone()[0]
                if done:
                    return
                if time.monotonic() > deadline:
                    raise AssertionError(f"the standby did not replay up to {target}")
                time.sleep(0.02)

    def pause(self) -> None:
        self.catch_up()
        self._sql(REPLICA_ALIAS, "SELECT pg_wal_replay_pause()::text")
        self.paused = True

    def resume(self) -> None:
        self._sql(REPLICA_ALIAS, "SELECT pg_wal_replay_resume()::text")
        self.paused = False
        self.catch_up()

    def _script(self, command: str) -> None:
        subprocess.run([str(SCRIPT), command], check=True, env=os.environ, timeout=90)

    def stop(self) -> None:
        self.stopped = True
        self._script("standby-stop")
        # A request ends by closing its connections (CONN_MAX_AGE=0; with a longer age the
        # health check of the next request closes a dead one): do what a request would.
        close_old_connections()
        connections[REPLICA_ALIAS].close()

    def start(self) -> None:
        self._script("standby-start")
        self.stopped = False


REPLICA_ALIAS = db_router.REPLICA


@pytest.fixture
def standby(transactional_db):
    db_router.replica_reset()
    standby = Standby()
    standby.catch_up()  # the test database and the data of earlier tests
    yield standby
    if standby.stopped:
        standby.start()
    if standby.paused:
        standby.resume()
    connections[REPLICA_ALIAS].close()
    db_router.replica_reset()


@pytest.fixture
def acme_admin(company):
    return company_admin(company, username="acme-admin")


@pytest.fixture
def api(company) -> ApiClient:
    return ApiClient(api_key_create(company=company, name="replica tests")[1])


def history_ids(client, api) -> dict[str, set[str]]:
    """The event ids each history read shows: the /usage/ page (by user label, which the
    tests set to the id), the CSV export and the read API."""
    page = client.get("/usage/")
    assert page.status_code == 200
    export = client.get("/usage/export.csv")
    assert export.status_code == 200
    rows = csv.DictReader(io.StringIO(b"".join(export.streaming_content).decode()))
    listed = api.get("/api/v1/usage-events?limit=100")
    assert listed.status_code == 200
    html = page.content.decode()
    return {
        "page": {i for i in ("seen-1", "seen-2", "late-1") if f"user {i}" in html},
        "export": {r["event_id"] for r in rows},
        "api": {r["id"] for r in listed.json()["results"]},
    }


@pytest.fixture
def hq_wallet_500(company, care):
    """500 credits in hq's wallet (pooling off): after hq's 100 included credits, usage
    draws it."""
    credits_purchase(
        company=company, amount="500", office=company.offices.get(slug="hq"), actor=care
    )


def hq_wallet(api) -> str:
    """hq's wallet balance as GET /api/v1/balance shows it."""
    response = api.get("/api/v1/balance")
    assert response.status_code == 200
    return next(o for o in response.json()["offices"] if o["office"] == "hq")["wallet_balance"]


def test_the_replica_alias_is_a_real_read_only_standby_of_the_test_database(standby):
    # The alias mirrors "default": same database name, another server, in recovery.
    primary, replica = connections["default"], connections[REPLICA_ALIAS]
    assert replica.settings_dict["NAME"] == primary.settings_dict["NAME"]
    assert replica.settings_dict["PORT"] != primary.settings_dict["PORT"]
    with replica.cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery(), current_database()")
        assert cursor.fetchone() == (True, primary.settings_dict["NAME"])


def test_history_pages_export_and_read_api_are_served_by_the_standby(
    standby, client, company, acme_admin, api, hq_wallet_500
):
    # given: two events replicated, then replay paused and a third charged on the primary
    usage_ingest(
        company=company,
        events=[
            event("seen-1", user_label="user seen-1"),
            event("seen-2", user_label="user seen-2", office="austin"),
        ],
    )
    client.force_login(acme_admin)
    balance_before = hq_wallet(api)
    standby.pause()
    charged = api.send_events(usage_event("late-1", user="user late-1", quantity="150"))
    assert charged.status_code == 200 and charged.json()["charged"] == 1
    # when: the history is read while the standby lags
    with CaptureQueriesContext(connections[REPLICA_ALIAS]) as on_replica:
        lagging = history_ids(client, api)
    # then: every history read shows what the standby has, not yet the new event ...
    replicated = {"seen-1", "seen-2"}
    assert lagging == {"page": replicated, "export": replicated, "api": replicated}
    assert len(on_replica) >= 3
    # ... while the balance is read from the primary: of the 150 credits, 99 came from hq's
    # allowance and 51 from its wallet, as the charge said — nothing lags there.
    assert charged.json()["events"][0]["funding_balance_after"] == "449.0000"
    assert (balance_before, hq_wallet(api)) == ("500.0000", "449.0000")
    # and once the standby catches up, the history shows the event
    standby.resume()
    assert history_ids(client, api) == {
        "page": {"seen-1", "seen-2", "late-1"},
        "export": {"seen-1", "seen-2", "late-1"},
        "api": {"seen-1", "seen-2", "late-1"},
    }


def test_the_history_totals_come_from_the_same_copy_as_its_rows(
    standby, client, company, acme_admin
):
    usage_ingest(company=company, events=[event("seen-1", user_label="user seen-1", quantity="3")])
    standby.pause()
    usage_ingest(company=company, events=[event("late-1", user_label="user late-1", quantity="4")])
    client.force_login(acme_admin)
    # no filter: totals from the allowance rollups; a service filter: from the day rollups
    service = Service.objects.get(code="sms").pk
    for query in ("", f"?service={service}"):
        html = client.get(f"/usage/{query}").content.decode()
        assert 'id="total-events">1<' in html, query
        assert 'id="total-events">2<' not in html, query


def test_ingestion_reads_and_writes_only_the_primary(standby, company, api):
    # given: replay paused, so the standby cannot answer for anything written now
    usage_ingest(company=company, events=[event("i-1")])
    standby.pause()
    # when: a batch is charged, then sent again
    with CaptureQueriesContext(connections[REPLICA_ALIAS]) as on_replica:
        first = api.send_events(usage_event("i-2"), usage_event("i-3", office="berlin"))
        again = api.send_events(usage_event("i-2"), usage_event("i-1"))
    # then: the standby was never asked; the primary has every record
    assert len(on_replica) == 0
    assert first.json()["charged"] == 2
    assert [e["duplicate"] for e in again.json()["events"]] == [True, True]
    assert set(
        UsageRecord.objects.using("default")
        .filter(company=company)
        .values_list("external_id", flat=True)
    ) == {"i-1", "i-2", "i-3"}


def test_a_lagging_standby_cannot_let_an_id_be_charged_twice(standby, company, api, hq_wallet_500):
    # given: replay paused; an event charged on the primary, which the standby lacks
    standby.pause()
    first = api.send_events(usage_event("once", quantity="120"))
    assert first.json()["charged"] == 1
    assert not UsageRecord.objects.using(REPLICA_ALIAS).filter(external_id="once").exists()
    # when: the same event is sent again while the standby still lacks it
    again = api.send_events(usage_event("once", quantity="120"))
    # then: a duplicate, charged once: one record, one usage draw of 20 from the wallet
    assert again.status_code == 200
    assert (again.json()["charged"], again.json()["events"][0]["duplicate"]) == (0, True)
    assert UsageRecord.objects.using("default").filter(external_id="once").count() == 1
    wallet = Account.objects.get(company=company, kind=AccountKind.WALLET, office__slug="hq")
    assert wallet.balance == Decimal("480")
    draws = LedgerEntry.objects.filter(account=wallet, entry_type=EntryType.USAGE)
    assert list(draws.values_list("amount", flat=True)) == [Decimal("-20")]


def test_the_portal_reads_from_the_primary_while_the_standby_is_down(
    standby, client, company, acme_admin, api, monkeypatch
):
    # given: one replicated event; then the standby stops and another event is charged
    usage_ingest(company=company, events=[event("seen-1", user_label="user seen-1")])
    standby.catch_up()
    client.force_login(acme_admin)
    standby.stop()
    charged = api.send_events(usage_event("late-1", user="user late-1"))
    assert charged.status_code == 200
    # when / then: every history read answers, from the primary (it has both events)
    started = time.monotonic()
    assert history_ids(client, api) == {
        "page": {"seen-1", "late-1"},
        "export": {"seen-1", "late-1"},
        "api": {"seen-1", "late-1"},
    }
    assert time.monotonic() - started < 5  # one refused connect, then no more tries
    assert client.get("/balance/").status_code == 200
    # and when the standby is back, history is read from it again after the retry interval
    monkeypatch.setattr(db_router, "REPLICA_RETRY_SECONDS", 0.2)
    db_router.replica_mark_down("test: shorten the interval")
    standby.start()
    standby.catch_up()
    time.sleep(0.3)
    with CaptureQueriesContext(connections[REPLICA_ALIAS]) as on_replica:
        assert history_ids(client, api)["api"] == {"seen-1", "late-1"}
    assert len(on_replica) >= 3
