"""CSV export: every row of the filtered set, streamed, within the user's scope."""

import csv
import io
from decimal import Decimal

from django.http import StreamingHttpResponse

from tests.factories import event
from tests.portal.conftest import login, recent
from usage.models import UsageRecord
from usage.services import usage_ingest


def read_csv(response) -> list[dict]:
    assert isinstance(response, StreamingHttpResponse)
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_export_rows_match_the_filter(client, acme_usage, acme_admin, offices):
    login(client, acme_admin)
    response = client.get(f"/usage/export.csv?office={offices['austin'].pk}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = read_csv(response)
    assert sorted(r["event_id"] for r in rows) == ["a1", "a2"]
    a1 = next(r for r in rows if r["event_id"] == "a1")
    assert (a1["cost"], a1["allowance"], a1["wallet"], a1["pool"], a1["uncovered"]) == (
        "120.0000",
        "100.0000",
        "20.0000",
        "0.0000",
        "0.0000",
    )
    assert a1["pooling"] == "off" and a1["number"] == "'+15550001"  # see the next test
    assert sum(Decimal(r["cost"]) for r in rows) == Decimal("127.5")


def test_each_row_says_what_its_funding_balance_held_right_after_it(client, acme_usage, acme_admin):
    # For reconciling against the ledger: the balance that paid, right after the event.
    login(client, acme_admin)
    rows = {r["event_id"]: r for r in read_csv(client.get("/usage/export.csv"))}
    records = UsageRecord.objects.filter(company__slug="acme")
    assert rows.keys() == {r.external_id for r in records}
    for record in records:
        after = record.funding_balance_after
        assert rows[record.external_id]["balance_after"] == (
            "" if after is None else f"{after:.4f}"
        )
    a1 = rows["a1"]  # austin's wallet paid 20 of its 120 credits
    assert Decimal(a1["wallet"]) == 20 and a1["balance_after"]


def test_export_has_every_row_not_just_a_page(client, acme, acme_admin):
    usage_ingest(
        company=acme, events=[event(f"e{i}", occurred_at=recent(i + 1)) for i in range(60)]
    )
    login(client, acme_admin)
    assert len(read_csv(client.get("/usage/export.csv"))) == 60
    assert len(read_csv(client.get("/usage/export.csv?min_cost=2"))) == 0


def test_office_admin_exports_only_their_office(client, acme_usage, austin_admin):
    login(client, austin_admin)
    rows = read_csv(client.get("/usage/export.csv"))
    assert {r["office"] for r in rows} == {"Austin"}


def test_office_admin_cannot_export_another_office_by_id(client, acme_usage, austin_admin, offices):
    login(client, austin_admin)
    response = client.get(f"/usage/export.csv?office={offices['berlin'].pk}")
    assert response.status_code == 400
    assert b"office" in response.content
    assert b"Carl" not in response.content


def test_other_tenant_exports_none_of_acmes_rows(client, acme_usage, globex_admin):
    login(client, globex_admin)
    assert read_csv(client.get("/usage/export.csv")) == []


def test_bad_filter_on_export_is_400(client, acme_usage, acme_admin):
    login(client, acme_admin)
    response = client.get("/usage/export.csv?date_from=notadate&min_cost=abc")
    assert response.status_code == 400
    assert b"date_from" in response.content and b"min_cost" in response.content


def test_formula_like_text_is_neutralised(client, acme, acme_admin):
    usage_ingest(
        company=acme,
        events=[event("f1", user_label='=HYPERLINK("x")', phone_number="+1 555 0100")],
    )
    login(client, acme_admin)
    (row,) = read_csv(client.get("/usage/export.csv"))
    assert row["user"].startswith("'=")
    # a spreadsheet computes "+1 555 0100" too (issue 13): quoted like any other formula
    assert row["number"] == "'+1 555 0100"
