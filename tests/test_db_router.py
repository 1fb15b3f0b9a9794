"""The read-replica router: history reads go to "replica" when it exists, all else to
"default". The replica here is a second connection to the same test database (a test
mirror), so what it reads must have been committed: hence transaction=True."""

from __future__ import annotations

import warnings

import pytest
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext

from config.db_router import REPLICA, HistoryReplicaRouter
from credits.models import Account
from tests.factories import event
from usage.models import UsageRecord
from usage.services import usage_ingest


@pytest.fixture
def replica(transactional_db, settings):
    """DATABASES["replica"]: the test database again, as a mirror of "default"."""
    mirror = {**connections["default"].settings_dict, "TEST": {"MIRROR": "default"}}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Overriding setting DATABASES")
        settings.DATABASES = {**settings.DATABASES, REPLICA: mirror}
    connections.settings[REPLICA] = mirror
    # Connect explicitly: the test case only lets aliases it knew at set-up connect lazily.
    connections[REPLICA].connect()
    yield connections[REPLICA]
    connections[REPLICA].close()
    del connections[REPLICA]
    del connections.settings[REPLICA]


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
