"""The read-replica router: history reads go to "replica" when it exists, all else to
"default". The replica here is a second connection to the same test database (a test
mirror), so what it reads must have been committed: hence transaction=True."""

from __future__ import annotations

import socket
import time
import warnings

import pytest
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext

from config import db_router
from config.db_router import REPLICA, HistoryReplicaRouter
from credits.models import Account
from tests.factories import company_admin, event
from usage.models import UsageRecord
from usage.services import usage_ingest


def _add_replica_alias(settings, **overrides):
    mirror = {
        **connections["default"].settings_dict,
        "TEST": {"MIRROR": "default"},
        **overrides,
    }
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Overriding setting DATABASES")
        settings.DATABASES = {**settings.DATABASES, REPLICA: mirror}
    connections.settings[REPLICA] = mirror
    db_router.replica_reset()


def _remove_replica_alias():
    connections[REPLICA].close()
    del connections[REPLICA]
    del connections.settings[REPLICA]
    db_router.replica_reset()


@pytest.fixture
def replica(transactional_db, settings):
    """DATABASES["replica"]: the test database again, as a mirror of "default"."""
    _add_replica_alias(settings)
    # Connect explicitly: the test case only lets aliases it knew at set-up connect lazily.
    connections[REPLICA].connect()
    yield connections[REPLICA]
    _remove_replica_alias()


@pytest.fixture
def unreachable_replica(transactional_db, settings, monkeypatch):
    """DATABASES["replica"] on a loopback port where nothing listens; counts connects."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # free, and nothing listens once the socket closes
    options = {**connections["default"].settings_dict["OPTIONS"], "connect_timeout": 1}
    _add_replica_alias(settings, PORT=port, OPTIONS=options, CONN_HEALTH_CHECKS=True)
    replica = connections[REPLICA]
    attempts = []
    connect = replica.connect

    def ensure_connection():
        # What Django's does, minus the test case's guard against aliases it did not know
        # at set-up (this one is added later).
        if replica.connection is None:
            attempts.append(1)
            with replica.wrap_database_errors:
                connect()

    monkeypatch.setattr(replica, "ensure_connection", ensure_connection)
    yield attempts
    _remove_replica_alias()


def test_without_a_replica_every_read_and_write_uses_default(db):
    router = HistoryReplicaRouter()
    assert router.db_for_read(UsageRecord) == "default"
    assert router.db_for_read(Account) == "default"
    assert router.db_for_write(UsageRecord) == "default"
    assert UsageRecord.objects.all().db == "default"


@pytest.mark.django_db(transaction=True)
def test_usage_history_reads_are_served_by_the_replica(replica, company):
    # given: two charged events, committed on the primary
    usage_ingest(company=company, events=[event("r1"), event("r2", office="austin")])
    # when: the usage history is read outside a transaction (a page, the export)
    with (
        CaptureQueriesContext(replica) as on_replica,
        CaptureQueriesContext(connections["default"]) as on_default,
    ):
        ids = sorted(UsageRecord.objects.filter(company=company).values_list("external_id"))
    # then: the replica answered, the primary was not asked
    assert ids == [("r1",), ("r2",)]
    assert len(on_replica) == 1
    assert len(on_default) == 0


@pytest.mark.django_db(transaction=True)
def test_other_reads_and_all_writes_stay_on_default(replica, company):
    with CaptureQueriesContext(replica) as on_replica:
        balances = list(Account.objects.filter(company=company).values_list("balance"))
        usage_ingest(company=company, events=[event("w1")])
    assert balances  # the company's pool, AI account and wallets
    assert len(on_replica) == 0
    assert HistoryReplicaRouter().db_for_write(UsageRecord) == "default"


@pytest.mark.django_db(transaction=True)
def test_reads_inside_a_transaction_see_the_primary(replica, company):
    # Ingestion looks up already-charged ids inside its transaction: a lagging replica
    # would let an id be charged twice, so those reads must stay on the primary.
    with transaction.atomic():
        assert UsageRecord.objects.all().db == "default"
    assert UsageRecord.objects.all().db == REPLICA


@pytest.mark.django_db(transaction=True)
def test_ingesting_a_known_id_again_is_a_duplicate_with_a_replica_configured(replica, company):
    (first,) = usage_ingest(company=company, events=[event("d1")])
    (again,) = usage_ingest(company=company, events=[event("d1")])
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.record.pk == first.record.pk
    assert UsageRecord.objects.using("default").filter(company=company).count() == 1


def test_the_replica_is_never_migrated():
    router = HistoryReplicaRouter()
    assert router.allow_migrate(REPLICA, "usage") is False
    assert router.allow_migrate("default", "usage") is None


@pytest.mark.django_db(transaction=True)
def test_history_is_read_from_the_primary_while_the_replica_is_unreachable(
    unreachable_replica, company, client, monkeypatch
):
    # given: usage on the primary; a replica that refuses connections
    usage_ingest(company=company, events=[event("u1"), event("u2")])
    # when: history is read
    history = UsageRecord.objects.filter(company=company)
    # then: from the primary, after one failed connect ...
    assert history.db == "default"
    assert sorted(history.values_list("external_id", flat=True)) == ["u1", "u2"]
    assert len(unreachable_replica) == 1
    # ... which is not tried again within the retry interval, pages included
    client.force_login(company_admin(company))
    assert client.get("/usage/").status_code == 200
    assert history.db == "default"
    assert len(unreachable_replica) == 1
    # after it, the replica is tried again (and still found down)
    monkeypatch.setattr(db_router, "REPLICA_RETRY_SECONDS", 0.05)
    db_router.replica_mark_down("test: a shorter interval")
    time.sleep(0.1)
    assert history.db == "default"
    assert len(unreachable_replica) == 2


@pytest.mark.django_db(transaction=True)
def test_history_returns_to_the_replica_once_it_answers_again(replica, company, monkeypatch):
    monkeypatch.setattr(db_router, "REPLICA_RETRY_SECONDS", 0.05)
    db_router.replica_mark_down("test: as if it had been down")
    assert UsageRecord.objects.all().db == "default"
    time.sleep(0.1)
    assert UsageRecord.objects.all().db == REPLICA
