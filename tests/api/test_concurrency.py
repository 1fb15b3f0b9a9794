"""Two requests racing with the same event id charge it once (real threads, PostgreSQL)."""

import threading
from decimal import Decimal

import pytest
from django.db import connection

from credits.models import Account, AccountKind, LedgerEntry
from credits.services import credits_purchase
from tests.api.conftest import ApiClient, usage_event
from usage.models import UsageRecord


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_requests_with_the_same_id_charge_it_once(company, care, key):
    # given: hq has 10 credits in its wallet beyond its 100 included
    credits_purchase(
        company=company, amount="10", office=company.offices.get(slug="hq"), actor=care
    )
    barrier = threading.Barrier(2)
    responses = [None, None]

    def send(slot: int):
        try:
            barrier.wait(timeout=10)
            responses[slot] = ApiClient(key).send_events(
                usage_event("race-1", quantity="104"), usage_event(f"solo-{slot}", quantity="1")
            )
        finally:
            connection.close()

    # when: both requests start together
    threads = [threading.Thread(target=send, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # then: both succeed, exactly one charged race-1, and both report the same charge
    assert [r.status_code for r in responses] == [200, 200]
    races = [r.json()["events"][0] for r in responses]
    assert sorted(e["duplicate"] for e in races) == [False, True]
    assert races[0]["split"] == races[1]["split"]
    assert UsageRecord.objects.filter(external_id="race-1").count() == 1
    assert UsageRecord.objects.count() == 3
    wallet = Account.objects.get(office__slug="hq", kind=AccountKind.WALLET)
    # 106 credits used: 100 included, 6 from the wallet
    assert wallet.balance == Decimal("4")
    assert wallet.balance == sum(e.amount for e in LedgerEntry.objects.filter(account=wallet))
