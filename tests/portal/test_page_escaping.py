"""Text that users type (office, plan and user names) is escaped in the rows that the
balance and usage pages build in Python rather than in templates."""

from credits.accounts import office_open
from credits.services import credits_purchase
from tests.factories import PlanFactory, event
from tests.portal.conftest import login, recent
from usage.services import usage_ingest

NAME = 'O\'Brien & <b>Sons</b> "x"'
ESCAPED = "O&#x27;Brien &amp; &lt;b&gt;Sons&lt;/b&gt; &quot;x&quot;"


def test_balance_table_escapes_office_and_plan_names(client, acme, acme_admin, care):
    # given: an office and a plan whose names hold markup, with a wallet balance
    plan = PlanFactory(code="markup", name="<i>Pro</i> & more")
    office = office_open(company=acme, name=NAME, slug="obrien", plan=plan)
    credits_purchase(company=acme, amount="12.5", office=office, actor=care)
    login(client, acme_admin)
    # when
    html = client.get("/balance/").content.decode()
    # then
    row = html[html.index('data-office="obrien"') : html.index("</tr>", html.index("obrien"))]
    assert f'<a href="/offices/obrien/">{ESCAPED}</a>' in row
    assert '<span class="subtle">&lt;i&gt;Pro&lt;/i&gt; &amp; more</span>' in row
    assert '<td class="num money wallet" data-label="Wallet balance">12.50</td>' in row
    assert "<b>" not in html and "<i>Pro" not in html


def test_usage_rows_escape_user_labels_and_numbers(client, acme, acme_admin):
    # given: usage whose user label and number hold markup
    usage_ingest(
        company=acme,
        events=[
            event("x1", occurred_at=recent(), user_label=NAME, phone_number="+1<555>&1"),
            event("x2", occurred_at=recent(2), user_label="<script>alert(1)</script>"),
        ],
    )
    login(client, acme_admin)
    # when
    html = client.get("/usage/").content.decode()
    # then
    body = html[html.index("<tbody") : html.index("</tbody>")]
    assert f'{ESCAPED}<br><span class="muted">+1&lt;555&gt;&amp;1</span>' in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<script>" not in html and "<b>" not in html
