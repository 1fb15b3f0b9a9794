"""The PostgreSQL write path of usage_ingest (the records by COPY, or by one INSERT for a few
events; one statement for ledger, balances and rollups) must store exactly what the
portable ORM path stores and return the saved records."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from core.db import ORM, POSTGRESQL
from credits.models import Account, AccountKind, Allowance, LedgerEntry
from credits.services import credits_purchase, pooling_set
from offices.services import office_addon_set
from tests.factories import AddOnFactory, company_factory, event
from usage import records as usage_records
from usage.models import UsageRecord
from usage.services import usage_ingest

WHEN = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)

FIELDS = [
    "office",
    "service",
    "external_id",
    "credit_kind",
    "quantity",
    "rate",
    "cost",
    "occurred_at",
    "period",
    "allowance_part",
    "pool_part",
    "wallet_part",
    "ai_part",
    "uncovered",
    "pooling_on",
    "funding_balance_after",
    "user_label",
    "phone_number",
    "metadata",
]


def _batch(prefix: str):
    return [
        event(f"{prefix}-1", office="hq", quantity="60", occurred_at=WHEN),
        event(
            f"{prefix}-2",
            office="austin",
            service="call_international",
            quantity="7.5",
            occurred_at=WHEN,
            user_label="Ana Ng",
            phone_number="+15550001",
            metadata={"call": {"to": "+4930123", "tags": ["a", "ü"]}, "n": 3},
        ),
        event(f"{prefix}-3", office="hq", quantity="70", occurred_at=WHEN),
        event(f"{prefix}-4", office="berlin", service="ai_agent", quantity="6", occurred_at=WHEN),
    ]


def _stored(company):
    """Stored fields by event number (the id without its company prefix)."""
    rows = {}
    for record in UsageRecord.objects.filter(company=company):
        row = model_to_dict(record, FIELDS)
        rows[row.pop("external_id").split("-", 1)[1]] = row
    return rows


# COPY even for this small batch, or the INSERT of a few events.
PATHS = pytest.mark.parametrize("copy_min_rows", [1, 10**6], ids=["copy", "insert"])


def _ingest_both_ways(care, monkeypatch, copy_min_rows):
    fast = company_factory(slug="fast", offices=("austin", "berlin"))
    plain = company_factory(slug="plain", offices=("austin", "berlin"))
    for company in (fast, plain):
        pooling_set(company=company, enabled=True, actor=care, reason="test")
        credits_purchase(company=company, amount="25", actor=care)
        credits_purchase(company=company, amount="5", kind="ai_agent", actor=care)
    with monkeypatch.context() as m:
        m.setattr(usage_records, "COPY_MIN_ROWS", copy_min_rows)
        fast_results = usage_ingest(
            company=fast, events=_batch("fast"), actor=care, writer=POSTGRESQL
        )
    # the portable path: bulk_create/bulk_update through the ORM
    plain_results = usage_ingest(company=plain, events=_batch("plain"), actor=care, writer=ORM)
    return fast, plain, fast_results, plain_results


def _values(record) -> dict:
    return {f.attname: getattr(record, f.attname) for f in UsageRecord._meta.concrete_fields}


def _normalise(rows: dict, company) -> dict:
    offices = {o.pk: o.slug for o in company.offices.all()}
    for row in rows.values():
        row["office"] = offices[row["office"]]
    return rows


@PATHS
def test_copy_path_stores_the_same_records_as_the_orm_path(
    services, care, monkeypatch, copy_min_rows
):
    # given two identical companies, when the same batch is charged once by each path
    fast, plain, fast_results, plain_results = _ingest_both_ways(care, monkeypatch, copy_min_rows)
    # then every stored field is the same (cost split, balances after, metadata, labels)
    assert _normalise(_stored(fast), fast) == _normalise(_stored(plain), plain)
    stored = _stored(fast)
    assert stored["1"]["allowance_part"] == Decimal("60")
    assert (stored["3"]["allowance_part"], stored["3"]["pool_part"]) == (40, 25)
    assert stored["3"]["uncovered"] == Decimal("5")
    assert stored["2"]["metadata"] == {"call": {"to": "+4930123", "tags": ["a", "ü"]}, "n": 3}
    # and the returned records are the saved rows, with their primary keys
    for result in fast_results:
        assert not result.duplicate
        saved = UsageRecord.objects.get(pk=result.record.pk)
        assert saved.external_id == result.record.external_id
        assert saved.created_at == result.record.created_at
        assert saved.created_by == care
        assert not result.record._state.adding
        assert not result.record.get_deferred_fields()
        assert _values(result.record) == _values(saved)


@PATHS
def test_copy_path_keeps_the_same_allowance_rollups_and_ledger(
    services, care, monkeypatch, copy_min_rows
):
    fast, plain, *_ = _ingest_both_ways(care, monkeypatch, copy_min_rows)

    def rollups(company):
        return sorted(
            (a.office.slug, a.kind, a.included, a.used, a.cost_total, a.pool_drawn, a.ai_drawn,
             a.uncovered, a.events)
            for a in Allowance.objects.filter(company=company)
        )  # fmt: skip

    def ledger(company):
        return sorted(
            (e.account.kind, e.amount, e.balance_after, e.memo)
            for e in LedgerEntry.objects.filter(company=company, entry_type="usage")
        )

    assert rollups(fast) == rollups(plain)
    assert ledger(fast) == ledger(plain)
    hq = [r for r in rollups(fast) if r[0] == "hq" and r[1] == "standard"]
    assert hq == [("hq", "standard", 100, 100, 130, 25, 0, 5, 2)]
    pool = Account.objects.get(company=fast, kind=AccountKind.POOL)
    assert pool.balance == 0


def test_a_second_batch_adds_to_the_rollups_it_found(company):
    usage_ingest(company=company, events=[event("a1", quantity="30", occurred_at=WHEN)])
    usage_ingest(
        company=company,
        events=[
            event("a2", quantity="50", occurred_at=WHEN),
            event("a1", quantity="30", occurred_at=WHEN),
        ],
    )
    allowance = Allowance.objects.get(office__slug="hq", office__company=company, kind="standard")
    assert (allowance.used, allowance.cost_total, allowance.events) == (80, 80, 2)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("copy_min_rows", [1, 1000], ids=["copy", "insert"])
def test_the_same_id_sent_twice_at_once_is_charged_once(company, monkeypatch, copy_min_rows):
    # Two batches race on one new external id: the loser's COPY (or INSERT) hits the unique
    # key, is retried, and then reports the id as a duplicate instead of failing.
    monkeypatch.setattr(usage_records, "COPY_MIN_ROWS", copy_min_rows)
    results, errors = [], []
    barrier = threading.Barrier(2)

    def send():
        try:
            barrier.wait()
            results.extend(usage_ingest(company=company, events=[event("same", occurred_at=WHEN)]))
        except Exception as exc:  # noqa: BLE001 - the test asserts there is none
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(r.duplicate for r in results) == [False, True]
    assert UsageRecord.objects.filter(company=company, external_id="same").count() == 1
    allowance = Allowance.objects.get(office__slug="hq", office__company=company, kind="standard")
    assert allowance.events == 1


def test_a_new_months_allowance_includes_the_offices_add_ons(
    company, django_assert_max_num_queries
):
    # given: austin has two of a 50-credit add-on on top of its 100-credit plan
    austin = company.offices.get(slug="austin")
    office_addon_set(office=austin, addon=AddOnFactory(code="extra"), quantity=2)
    # when: its first event of the month is charged
    (result,) = usage_ingest(
        company=company, events=[event("n1", office="austin", quantity="180", occurred_at=WHEN)]
    )
    # then: 200 credits are included, so all 180 come from the allowance
    allowance = Allowance.objects.get(office=austin, kind="standard")
    assert allowance.included == Decimal("200")
    assert result.record.allowance_part == Decimal("180")
    # and a later event of the same month does not read the add-ons again
    with CaptureQueriesContext(connection) as queries:
        usage_ingest(
            company=company, events=[event("n2", office="austin", quantity="1", occurred_at=WHEN)]
        )
    assert not [q for q in queries.captured_queries if "offices_officeaddon" in q["sql"]]


@pytest.mark.parametrize("writer", [ORM, POSTGRESQL])
def test_returned_records_carry_their_related_objects(company, writer):
    # The API renders office and service of every new record: no query per record.
    events = [event(f"r{i}", office=("hq", "austin")[i % 2], occurred_at=WHEN) for i in range(6)]
    results = usage_ingest(company=company, events=events, writer=writer)
    with CaptureQueriesContext(connection) as queries:
        seen = [
            (r.record.office.slug, r.record.service.code, r.record.funding_account.kind)
            for r in results
        ]
    assert len(queries.captured_queries) == 0
    assert [s[0] for s in seen] == ["hq", "austin"] * 3


@pytest.mark.parametrize("writer", [ORM, POSTGRESQL])
def test_the_usage_entry_memo_counts_its_events_in_words(company, care, writer):
    if writer == POSTGRESQL and connection.vendor != "postgresql":
        pytest.skip("the one-statement writer is PostgreSQL's")
    # given: hq's allowance used up and credits in its wallet (pooling is off)
    credits_purchase(
        company=company, amount="10", office=company.offices.get(slug="hq"), actor=care
    )
    usage_ingest(
        company=company, events=[event("allow", quantity="100", occurred_at=WHEN)], writer=writer
    )
    # when: a batch of one event, then a batch of two, draw on the wallet
    usage_ingest(company=company, events=[event("one", occurred_at=WHEN)], writer=writer)
    usage_ingest(
        company=company,
        events=[event(f"two-{i}", occurred_at=WHEN) for i in range(2)],
        writer=writer,
    )
    # then: the memos say "1 event" and "2 events"
    memos = LedgerEntry.objects.filter(company=company, entry_type="usage").order_by("pk")
    assert [e.memo for e in memos] == ["Usage: 1 event", "Usage: 2 events"]
