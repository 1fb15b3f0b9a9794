"""Issue 12: uncovered overage on the balance page, run-out warnings for every funding
balance, the activity page and its CSV, the usage filters by slug and phone number,
no-store caching and plurals."""

import csv
import datetime as dt
import io

import pytest

from credits.models import LedgerEntry
from credits.periods import billing_period
from credits.services import credits_purchase, pooling_set
from tests.factories import event, office_admin
from tests.portal.conftest import by_id, cell, login, recent
from usage.services import usage_ingest


def sms(acme, external_id, quantity, office="berlin", occurred_at=None, **extra):
    usage_ingest(
        company=acme,
        events=[
            event(
                external_id,
                office=office,
                quantity=quantity,
                occurred_at=occurred_at or recent(),
                **extra,
            )
        ],
    )


# Point 3: uncovered overage ----------------------------------------------------------


def test_uncovered_overage_of_this_and_last_period_links_to_its_usage(client, acme, acme_admin):
    # given: berlin went 12 over last period and 5 over this one, with empty wallets
    period = billing_period(acme)
    last_month = dt.datetime.combine(
        period.start - dt.timedelta(days=3), dt.time(12), tzinfo=dt.UTC
    )
    sms(acme, "old", "112", occurred_at=last_month)
    sms(acme, "new", "105")
    login(client, acme_admin)
    # when
    html = client.get("/balance/").content.decode()
    # then
    row = 'data-office="berlin"'
    assert cell(html, row, "uncovered") == "5.00"
    assert cell(html, row, "uncovered-last") == "12.00"
    assert cell(html, 'data-office="austin"', "uncovered-last") == "0.00"
    last = period.start - dt.timedelta(days=1)
    link = (
        f"/usage/?office=berlin&amp;funded_by=uncovered&amp;date_from={last.replace(day=1)}"
        f"&amp;date_to={last}"
    )
    assert f'href="{link}"' in html
    # and the link shows exactly that usage
    response = client.get(link.replace("&amp;", "&"))
    assert by_id(response.content.decode(), "total-uncovered") == "12.00"


# Point 4: run-out warnings ----------------------------------------------------------


def test_empty_wallet_with_uncovered_usage_is_the_most_urgent_warning(
    client, acme, acme_admin, care, offices
):
    # given: pooling off; austin's wallet is empty and 1.00 of its usage went unpaid;
    # berlin's wallet has 500 and used little
    credits_purchase(company=acme, amount="500", office=offices["berlin"], actor=care)
    sms(acme, "a", "101", office="austin")
    sms(acme, "b", "10")
    login(client, acme_admin)
    # when
    html = client.get("/balance/").content.decode()
    # then
    warnings = by_id(html, "warnings")
    assert warnings.startswith(
        "Austin wallet is empty and usage is going unpaid: 1.00 credit of usage uncovered"
    )
    assert 'class="warning urgent"' in html
    assert "Berlin wallet" not in warnings  # plenty left, little use
    assert "HQ wallet" not in warnings  # empty, but its allowance is barely touched


def test_empty_balance_whose_allowance_is_nearly_used_warns(client, acme, acme_admin):
    sms(acme, "b", "85")  # berlin: 85 % of its allowance, empty wallet, nothing unpaid yet
    login(client, acme_admin)
    warnings = by_id(client.get("/balance/").content.decode(), "warnings")
    assert warnings.startswith("Berlin wallet is empty.")


def test_empty_pool_warns_while_pooling_is_on(client, acme, acme_admin, care):
    pooling_set(company=acme, enabled=True, actor=care, reason="pool")
    sms(acme, "b", "103")
    login(client, acme_admin)
    warnings = by_id(client.get("/balance/").content.decode(), "warnings")
    assert warnings.startswith("Company pool is empty and usage is going unpaid: 3.00 credits")


# Point 5: activity ------------------------------------------------------------------


@pytest.fixture
def ledger(acme, care, offices):
    """Purchases into austin's and berlin's wallets, then pooling on (4 transfer rows),
    a pool purchase, AI credits, and usage."""
    credits_purchase(
        company=acme, amount="40", office=offices["austin"], actor=care, reference="PO-A"
    )
    credits_purchase(
        company=acme,
        amount="60",
        office=offices["berlin"],
        actor=care,
        memo='=HYPERLINK("http://x")',
    )
    credits_purchase(company=acme, amount="9", office=offices["hq"], actor=care, kind="ai_agent")
    pooling_set(company=acme, enabled=True, actor=care, reason="Quarter-end consolidation")
    credits_purchase(company=acme, amount="25", actor=care, reference="PO-POOL")
    sms(acme, "u1", "120", office="austin")
    return acme


def test_four_rows_of_one_pooling_transfer_show_the_reason_once(client, ledger, acme_admin):
    login(client, acme_admin)
    html = client.get("/balance/").content.decode()
    table = html[
        html.index('id="activity-table"') : html.index(
            "</table>", html.index('id="activity-table"')
        )
    ]
    assert table.count("Quarter-end consolidation") == 1
    assert table.count("same pooling transfer") == 3
    assert 'href="/balance/activity/"' in html


def test_activity_page_filters_by_balance_type_and_dates(client, ledger, acme_admin, offices):
    login(client, acme_admin)
    html = client.get("/balance/activity/").content.decode()
    assert "Usage" in html and "PO-POOL" in html and "PO-A" in html
    wallet = offices["austin"].accounts.get().pk
    html = client.get(f"/balance/activity/?account={wallet}&entry_type=purchase").content.decode()
    table = html[html.index('id="activity-table"') :]
    assert "PO-A" in table and "PO-POOL" not in table and "Pooling transfer" not in table
    tomorrow = dt.date.today() + dt.timedelta(days=2)
    html = client.get(f"/balance/activity/?date_from={tomorrow}").content.decode()
    assert "No balance activity matches these filters." in html
    response = client.get("/balance/activity/?date_from=2026-02-31")
    assert response.status_code == 200 and "Enter a valid date" in response.content.decode()


def test_activity_is_paginated_without_counting(client, acme, care, acme_admin, offices):
    for n in range(55):
        credits_purchase(
            company=acme, amount="1", office=offices["hq"], actor=care, reference=f"R-{n:02}"
        )
    login(client, acme_admin)
    first = client.get("/balance/activity/").content.decode()
    assert "R-54" in first and "R-04" not in first and 'rel="next"' in first
    second = client.get("/balance/activity/?page=2").content.decode()
    assert "R-04" in second and "R-54" not in second


def test_office_admins_see_their_wallet_the_pool_while_shared_and_ai_only_at_the_primary(
    client, ledger, care, offices
):
    austin = office_admin(offices["austin"], username="austin-admin")
    hq = office_admin(offices["hq"], username="hq-admin")
    login(client, austin)
    html = client.get("/balance/activity/").content.decode()
    assert "PO-A" in html and "PO-POOL" in html  # own wallet; the pool is shared now
    assert "Berlin wallet" not in html and "AI agent credits" not in html
    berlin_wallet = offices["berlin"].accounts.get().pk
    response = client.get(f"/balance/activity/?account={berlin_wallet}")
    assert "Select a valid choice" in response.content.decode()
    assert "HYPERLINK" not in response.content.decode()
    # after pooling is turned off, the pool's entries are no longer theirs to read
    pooling_set(company=ledger, enabled=False, actor=care, reason="back")
    html = client.get("/balance/activity/").content.decode()
    assert "PO-POOL" not in html and "PO-A" in html
    login(client, hq)
    assert "AI agent credits" in client.get("/balance/activity/").content.decode()


def test_activity_csv_streams_every_row_with_text_cells_neutralised(client, ledger, acme_admin):
    login(client, acme_admin)
    response = client.get("/balance/activity.csv?entry_type=purchase")
    assert response.streaming and response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == LedgerEntry.objects.filter(company=ledger, entry_type="purchase").count()
    memo = next(r["memo"] for r in rows if "HYPERLINK" in r["memo"])
    assert memo == '\'=HYPERLINK("http://x")'
    assert {r["balance"] for r in rows} >= {"Austin wallet", "Company pool", "AI agent credits"}
    assert client.get("/balance/activity.csv?entry_type=nope").status_code == 400


# Point 8: filters --------------------------------------------------------------------


def test_office_filter_takes_the_slug_and_old_numeric_links(
    client, acme_usage, acme_admin, offices
):
    login(client, acme_admin)
    by_slug = client.get("/usage/?office=austin").content.decode()
    assert "Select a valid choice" not in by_slug
    assert "Ann" in by_slug and "Carl" not in by_slug
    old_link = client.get(f"/usage/?office={offices['austin'].pk}&credit_kind=standard")
    assert old_link.status_code == 302
    assert old_link["Location"] == "/usage/?office=austin&credit_kind=standard"
    html = client.get(old_link["Location"]).content.decode()
    assert '<option value="austin" selected>' in html
    export = client.get("/usage/export.csv?office=austin")
    assert b"Carl" not in b"".join(export.streaming_content)


def test_office_admin_sees_only_their_offices_in_the_filter(client, acme_usage, austin_admin):
    login(client, austin_admin)
    html = client.get("/usage/").content.decode()
    select = html[
        html.index('name="office"') : html.index("</select>", html.index('name="office"'))
    ]
    assert "All offices" not in select and "Austin" in select


def test_phone_search_ignores_formatting(client, acme, acme_admin):
    sms(acme, "p1", "3", user_label="Dora", phone_number="+49 30 5555 0171")
    sms(acme, "p2", "4", user_label="Emil", phone_number="+49 30 5555 0999")
    login(client, acme_admin)
    for text in ("%2B493055550171", "030-5555-0171".replace("030", "30"), "5555 0171"):
        html = client.get(f"/usage/?q={text}").content.decode()
        assert "Dora" in html and "Emil" not in html, text
        assert by_id(html, "total-cost") == "3.00", text


def test_quantity_sorts_within_a_service(client, acme, acme_admin):
    sms(acme, "s1", "50", user_label="sms-50")
    usage_ingest(
        company=acme,
        events=[
            event(
                "c1",
                office="berlin",
                service="call_international",
                quantity="7",
                occurred_at=recent(),
                user_label="call-7",
            ),
            event(
                "c2",
                office="berlin",
                service="call_international",
                quantity="300",
                occurred_at=recent(),
                user_label="call-300",
            ),
        ],
    )
    sms(acme, "s2", "2", user_label="sms-2")
    login(client, acme_admin)
    html = client.get("/usage/?sort=quantity").content.decode()
    order = sorted(["sms-50", "sms-2", "call-7", "call-300"], key=html.index)
    # one service's records together, smallest quantity first within it
    assert order in (
        ["sms-2", "sms-50", "call-7", "call-300"],
        ["call-7", "call-300", "sms-2", "sms-50"],
    )


def test_sortable_headers_are_marked_orderable(client, acme_usage, acme_admin):
    login(client, acme_admin)
    html = client.get("/usage/").content.decode()
    assert html.count("orderable") >= 6


# Point 10: no-store, plurals ---------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/balance/",
        "/balance/activity/",
        "/balance/activity.csv",
        "/usage/",
        "/usage/export.csv",
        "/offices/austin/",
        "/credits/add/",
    ],
)
def test_money_pages_and_exports_are_not_stored(client, acme_usage, acme_admin, url):
    login(client, acme_admin)
    response = client.get(url)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]


def test_api_answers_are_not_stored(client, acme):
    from usage.api_auth import api_key_create

    key = api_key_create(company=acme, name="sync")[1]
    response = client.get("/api/v1/balance", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    refused = client.get("/api/v1/balance")
    assert refused.status_code == 401 and "no-store" in refused["Cache-Control"]


def test_minimum_purchase_message_is_singular(client, acme, acme_admin, offices, settings):
    settings.CREDITS_PURCHASE_MIN = 1
    login(client, acme_admin)
    html = client.get("/credits/add/").content.decode()
    token = html.split('name="token" value="')[1].split('"')[0]
    response = client.post(
        "/credits/add/", {"amount": "0.5", "office": offices["hq"].pk, "token": token}
    )
    text = response.content.decode()
    assert "Add at least 1 credit." in text and "1 credits" not in text


def test_activity_rows_escape_what_people_typed(client, acme, care, acme_admin, offices):
    credits_purchase(
        company=acme,
        amount="5",
        office=offices["hq"],
        actor=care,
        reference='"><script>x</script>',
        memo="<b>bold</b> & co",
    )
    login(client, acme_admin)
    for url in ("/balance/", "/balance/activity/"):
        html = client.get(url).content.decode()
        assert "<script>x</script>" not in html and "<b>bold</b>" not in html
        assert "&lt;b&gt;bold&lt;/b&gt; &amp; co" in html
        assert 'data-label="Amount"' in html and 'class="num money pos"' in html
