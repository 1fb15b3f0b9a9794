"""Issue 26 items 3 and 8 (part): the nav's Statements and Money controls, the list of
statement months (newest first, with status), the statement's neighbouring months, a
footer that claims a time zone only where the page shows the company's times, and the
demo script's PORT."""

import datetime as dt
import os
import re
import subprocess
from pathlib import Path

import pytest
from django.utils import timezone

from credits.periods import period_of
from offices.models import Company
from tests.portal.conftest import by_id, login

ROOT = Path(__file__).resolve().parents[2]


def months_back(company, n):
    month = period_of(timezone.now(), company.tz)
    for _ in range(n):
        month = (month - dt.timedelta(days=1)).replace(day=1)
    return month


def backdate(company, months):
    """The company began `months` months ago."""
    start = months_back(company, months)
    Company.objects.filter(pk=company.pk).update(
        created_at=dt.datetime.combine(start, dt.time(12), tzinfo=company.tz)
    )
    company.refresh_from_db()


@pytest.mark.parametrize("who", ["acme_admin", "austin_admin"])
def test_nav_links_statements_and_money_controls(client, request, who):
    login(client, request.getfixturevalue(who))
    html = client.get("/balance/").content.decode()
    nav = html[html.index('class="mainnav"') : html.index("</nav>")]
    assert 'href="/statements/months/"' in nav and ">Statements<" in nav
    assert 'href="/balance/controls/"' in nav and ">Money controls<" in nav


def test_statement_list_shows_months_newest_first_with_status(client, acme, acme_admin):
    backdate(acme, 2)
    login(client, acme_admin)
    response = client.get("/statements/months/")
    assert response.status_code == 200
    html = response.content.decode()
    links = re.findall(r'href="/statements/(\d{4}-\d{2})/"', html)
    expected = [f"{months_back(acme, n):%Y-%m}" for n in (0, 1, 2)]
    assert links == expected
    rows = by_id(html, "statement-months")
    assert rows.index("In progress") < rows.index("Closed")
    assert rows.count("Closed") == 2 and rows.count("In progress") == 1


def test_statement_links_its_neighbouring_months(client, acme, acme_admin):
    backdate(acme, 2)
    login(client, acme_admin)
    first, middle, current = (f"{months_back(acme, n):%Y-%m}" for n in (2, 1, 0))
    html = client.get(f"/statements/{middle}/").content.decode()
    assert f'id="statement-previous" rel="prev" href="/statements/{first}/"' in html
    assert f'id="statement-next" rel="next" href="/statements/{current}/"' in html
    oldest = client.get(f"/statements/{first}/").content.decode()
    assert 'id="statement-previous"' not in oldest
    newest = client.get(f"/statements/{current}/").content.decode()
    assert 'id="statement-next"' not in newest


def test_office_admin_neighbour_links_keep_the_office(client, acme, austin_admin):
    backdate(acme, 1)
    login(client, austin_admin)
    last, current = (f"{months_back(acme, n):%Y-%m}" for n in (1, 0))
    html = client.get(f"/statements/{current}/?office=austin").content.decode()
    assert f'href="/statements/{last}/?office=austin"' in html


def test_login_and_404_footers_claim_no_time_zone(client, acme, acme_admin):
    login_page = client.get("/accounts/login/").content.decode()
    footer = login_page[login_page.index("<footer") :]
    assert "Times are in" not in footer
    login(client, acme_admin)
    missing = client.get("/offices/nowhere/")
    assert missing.status_code == 404
    assert "UTC" not in missing.content.decode()[missing.content.decode().index("<footer") :]
    balance = client.get("/balance/").content.decode()
    assert f"Times are in {acme.billing_timezone}." in balance


def test_demo_script_takes_port_and_refuses_a_bad_one():
    script = ROOT / "scripts" / "demo.sh"
    bad = subprocess.run(
        ["bash", str(script)],
        env={**os.environ, "PORT": "eighty"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2
    assert "PORT must be a number" in bad.stderr
    text = script.read_text()
    assert 'runserver "127.0.0.1:$PORT"' in text
    readme = (ROOT / "README.md").read_text()
    assert "PORT=8080 ./scripts/demo.sh" in readme


@pytest.mark.parametrize(
    ("quantity", "unit", "expected"),
    [
        ("3.0000", "message", "3 messages"),
        ("1", "minute", "1 minute"),
        ("2.5", "minute", "2.5 minutes"),
        ("1234", "page", "1,234 pages"),
    ],
)
def test_quantities_read_as_units(quantity, unit, expected):
    from offices.templatetags.portal_format import units

    assert units(quantity, unit) == expected


def test_usage_rows_and_office_page_print_units(client, acme, acme_admin, acme_usage):
    login(client, acme_admin)
    history = client.get("/usage/").content.decode()
    assert "120 messages" in history and "120.00 message" not in history
    office = client.get("/offices/austin/").content.decode()
    assert "120 messages" in office


@pytest.mark.parametrize(
    ("query", "label"),
    [
        ("", "all time"),
        ("?date_from=2026-01-01", "from 2026-01-01"),
        ("?date_to=2026-01-31", "up to 2026-01-31"),
        ("?date_from=2026-01-01&date_to=2026-01-31", "2026-01-01 to 2026-01-31"),
    ],
)
def test_usage_totals_say_which_period_they_cover(client, acme, acme_admin, query, label):
    login(client, acme_admin)
    html = client.get(f"/usage/{query}").content.decode()
    assert by_id(html, "totals-period") == f"Totals for these filters, {label}:"
