"""The offices table of the balance page: offices with and without an allowance row this
period side by side, and the same figures as the API."""

from decimal import Decimal

from offices.services import office_addon_set
from offices.templatetags.portal_format import credits
from tests.factories import AddOnFactory, event
from tests.portal.conftest import cell, login, recent
from usage.services import usage_ingest


def test_offices_with_and_without_usage_this_period(client, acme, acme_admin):
    # given: berlin has 2 add-ons of 50 standard credits and no usage; austin used 30
    office_addon_set(office=acme.offices.get(slug="berlin"), addon=AddOnFactory(), quantity=2)
    usage_ingest(
        company=acme, events=[event("a", office="austin", quantity="30", occurred_at=recent())]
    )
    login(client, acme_admin)
    # when
    html = client.get("/balance/").content.decode()
    # then
    assert cell(html, 'data-office="berlin"', "remaining") == "200.00"
    assert cell(html, 'data-office="austin"', "remaining") == "70.00"
    assert cell(html, 'data-office="hq"', "remaining") == "100.00"
    assert 'href="/offices/berlin/"' in html


def test_credits_formats_a_decimal_as_its_text():
    for text in ["0", "1234.5", "-0.00004", "0.12345", "-1234567.89995", "1E+3"]:
        assert credits(Decimal(text)) == credits(text)
