from decimal import Decimal

import pytest

from credits.models import Account, AccountKind, EntryType, LedgerEntry
from credits.services import credits_purchase, pooling_set
from tests.api.conftest import usage_event
from usage import records as usage_records
from usage.api_schemas import UsageBatchOut
from usage.models import UsageRecord


def test_an_event_is_charged_and_its_split_matches_the_record_and_the_ledger(company, care, api):
    # given: austin has 100 included credits and 30 in its wallet, pooling off
    austin = company.offices.get(slug="austin")
    credits_purchase(company=company, amount="30", office=austin, actor=care)
    # when: it reports 120 SMS
    response = api.send_events(usage_event("e-1", office="austin", quantity="120"))
    # then: 100 from the allowance, 20 from its wallet, 10 left there
    assert response.status_code == 200
    body = response.json()
    assert (body["charged"], body["duplicates"]) == (1, 0)
    (out,) = body["events"]
    assert out["duplicate"] is False
    assert out["cost"] == "120.0000"
    assert out["split"] == {
        "allowance": "100.0000",
        "pool": "0.0000",
        "wallet": "20.0000",
        "ai_credits": "0.0000",
        "uncovered": "0.0000",
    }
    assert out["funding_balance_after"] == "10.0000"
    assert out["period"] == UsageRecord.objects.get().period.strftime("%Y-%m")
    record = UsageRecord.objects.get(company=company, external_id="e-1")
    assert (record.allowance_part, record.wallet_part, record.cost) == (
        Decimal("100"),
        Decimal("20"),
        Decimal("120"),
    )
    usage_entry = LedgerEntry.objects.get(entry_type=EntryType.USAGE)
    assert usage_entry.amount == Decimal("-20")
    assert usage_entry.account == Account.objects.get(office=austin, kind=AccountKind.WALLET)


def test_a_batch_is_charged_in_order_and_reports_every_event(company, care, api):
    # given: pooling on with 5 credits in the pool; hq has 100 included
    credits_purchase(company=company, amount="5", office=company.offices.get(slug="hq"), actor=care)
    pooling_set(company=company, enabled=True, actor=care, reason="test")
    # when: hq uses 99 credits, then 4 more, then an AI conversation
    response = api.send_events(
        usage_event("b-1", quantity="99"),
        usage_event("b-2", quantity="4", user="alice", number="+15550100", metadata={"k": [1]}),
        usage_event("b-3", service="ai_agent", quantity="1"),
    )
    # then: the second event takes the last allowance credit and 3 from the pool
    assert response.status_code == 200
    first, second, third = response.json()["events"]
    assert [e["id"] for e in (first, second, third)] == ["b-1", "b-2", "b-3"]
    assert second["split"]["allowance"] == "1.0000"
    assert second["split"]["pool"] == "3.0000"
    assert second["funding_balance_after"] == "2.0000"
    assert second["pooling_on"] is True
    assert (second["user"], second["number"], second["metadata"]) == (
        "alice",
        "+15550100",
        {"k": [1]},
    )
    assert third["credit_kind"] == "ai_agent"
    assert third["split"]["allowance"] == "2.0000"  # 2 credits per conversation, 10 included
    assert Account.objects.get(company=company, kind=AccountKind.POOL).balance == Decimal("2")


def test_an_uncovered_overage_is_reported_as_uncovered(company, api):
    response = api.send_events(usage_event("u-1", quantity="100.5"))
    (out,) = response.json()["events"]
    assert out["split"]["allowance"] == "100.0000"
    assert out["split"]["uncovered"] == "0.5000"


def test_an_event_id_already_charged_returns_its_original_charge_as_a_duplicate(company, api):
    # given: an event was charged
    first = api.send_events(usage_event("d-1", quantity="7")).json()["events"][0]
    # when: it is sent again, next to a new event
    response = api.send_events(usage_event("d-1", quantity="7"), usage_event("d-2"))
    # then: it is not charged again; the original allocation comes back
    assert response.status_code == 200
    body = response.json()
    again, new = body["events"]
    assert (body["charged"], body["duplicates"]) == (1, 1)
    assert again["duplicate"] is True and new["duplicate"] is False
    assert {k: v for k, v in again.items() if k != "duplicate"} == {
        k: v for k, v in first.items() if k != "duplicate"
    }
    assert UsageRecord.objects.filter(external_id="d-1").count() == 1
    hq = company.offices.get(slug="hq")
    assert hq.allowances.get().used == Decimal("8")


def test_an_id_already_charged_with_other_content_is_a_conflict_and_nothing_is_charged(
    company, api
):
    # given: an event was charged
    api.send_events(usage_event("c-1", quantity="7"))
    # when: the same id comes with another quantity, next to a new event
    response = api.send_events(usage_event("c-2"), usage_event("c-1", quantity="50"))
    # then: the batch is refused with a conflict on that item
    assert response.status_code == 422
    body = response.json()
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, "id")]
    assert "Conflict" in body["errors"][0]["message"]
    assert "quantity" in body["errors"][0]["message"]
    assert not UsageRecord.objects.filter(external_id="c-2").exists()
    assert company.offices.get(slug="hq").allowances.get().used == Decimal("7")


def test_the_same_id_twice_in_one_batch_is_refused_and_nothing_is_charged(company, api):
    response = api.send_events(usage_event("x-1"), usage_event("ok"), usage_event("x-1"))
    assert response.status_code == 422
    assert {"index": 2, "field": "id"}.items() <= response.json()["errors"][0].items()
    assert not UsageRecord.objects.exists()


def test_one_bad_event_refuses_the_whole_batch_with_an_error_per_bad_item(company, api):
    response = api.send_events(
        usage_event("ok-1"),
        usage_event("bad-1", service="carrier_pigeon"),
        usage_event("ok-2"),
        usage_event("bad-2", office="nowhere"),
    )
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, "service"), (3, "office")]
    assert all(e["message"] for e in errors)
    assert "nothing was charged" in response.json()["detail"]
    assert not UsageRecord.objects.exists()
    assert not LedgerEntry.objects.filter(entry_type=EntryType.USAGE).exists()


def test_schema_and_business_errors_share_one_shape(company, api):
    response = api.send_events(usage_event("s-1", quantity="-1"), usage_event("s-2", colour="red"))
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"index": 0, "field": "quantity", "message": "Input should be greater than 0"},
        {"index": 1, "field": "colour", "message": "Unknown field."},
    ]


def test_a_thousand_events_are_accepted_in_one_batch(company, api):
    events = [usage_event(f"k-{i}", quantity="0.1") for i in range(1000)]
    response = api.send_events(*events)
    assert response.status_code == 200
    assert response.json()["charged"] == 1000
    assert company.offices.get(slug="hq").allowances.get().used == Decimal("100")


def test_quantity_may_be_a_json_integer_or_a_decimal_string(company, api):
    response = api.send_events(usage_event("n-1", quantity=2), usage_event("n-2", quantity="2.5"))
    assert response.status_code == 200
    assert [e["cost"] for e in response.json()["events"]] == ["2.0000", "2.5000"]


def test_a_fractional_json_number_is_refused_with_a_hint_to_send_a_string(company, api):
    # A binary float cannot promise 4 exact decimals (README: "Quantities").
    response = api.send_events(usage_event("n-1", quantity=2.5))
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {
            "index": 0,
            "field": "quantity",
            "message": 'Send a fractional quantity as a decimal string: "2.5", not 2.5 '
            "(at most 4 decimal places).",
        }
    ]


@pytest.mark.parametrize("copy_min_rows", [1, 10**6], ids=["copy-path", "insert-path"])
def test_the_answer_is_exactly_what_its_response_schema_describes(
    company, care, api, monkeypatch, copy_min_rows
):
    # The endpoint renders its answer itself (no response validation by ninja): it must
    # validate against UsageBatchOut and dumping the validated model must change nothing.
    monkeypatch.setattr(usage_records, "COPY_MIN_ROWS", copy_min_rows)
    pooling_set(company=company, enabled=True, actor=care, reason="test")
    credits_purchase(company=company, amount="3.5", actor=care)
    api.send_events(usage_event("s-0", quantity="2"))
    response = api.send_events(
        usage_event("s-0", quantity="2"),  # a duplicate: read back from the database
        usage_event("s-1", quantity="99.1234", user="Ana\tNg", number="+1 555\\0100"),
        usage_event("s-2", service="ai_agent", quantity="3", metadata={"a": {"b": [1, "ü"]}}),
        usage_event("s-3", office="austin", quantity="104"),
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json; charset=utf-8"
    body = response.json()
    assert UsageBatchOut.model_validate(body).model_dump(mode="json") == body
    assert [e["duplicate"] for e in body["events"]] == [True, False, False, False]
    assert body["events"][1]["user"] == "Ana\tNg"
    assert body["events"][1]["number"] == "+1 555\\0100"
    # hq: 98 left of its allowance, then 1.1234 from the pool; austin: 100 included, then
    # the pool's last 2.3766, 1.6234 uncovered
    assert body["events"][1]["split"]["pool"] == "1.1234"
    assert body["events"][3]["split"]["pool"] == "2.3766"
    assert body["events"][3]["split"]["uncovered"] == "1.6234"
    # and the stored records say the same as the answer
    for out in body["events"]:
        record = UsageRecord.objects.get(company=company, external_id=out["id"])
        assert out["cost"] == f"{record.cost:.4f}"
        assert (out["user"], out["number"], out["metadata"]) == (
            record.user_label,
            record.phone_number,
            record.metadata,
        )
        assert out["funding_balance_after"] == f"{record.funding_balance_after:.4f}"
