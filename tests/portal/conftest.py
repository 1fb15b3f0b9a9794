"""Portal fixtures: Acme (hq, austin, berlin) with usage, its admins, and a second tenant."""

import datetime as dt

import pytest
from django.contrib.auth.models import User

from credits.services import credits_purchase
from tests.factories import UserFactory, company_admin, company_factory, event, office_admin
from usage.services import usage_ingest


@pytest.fixture
def acme(company):
    return company


@pytest.fixture
def offices(acme):
    return {o.slug: o for o in acme.offices.all()}


@pytest.fixture
def acme_admin(acme):
    return company_admin(acme, username="acme-admin")


@pytest.fixture
def austin_admin(offices):
    return office_admin(offices["austin"], username="austin-admin")


@pytest.fixture
def no_role_user(db):
    return UserFactory(username="nobody")


@pytest.fixture
def globex(services):
    return company_factory(slug="globex", name="Globex", offices=("paris",))


@pytest.fixture
def globex_admin(globex):
    return company_admin(globex, username="globex-admin")


def recent(minutes: int = 5) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)


@pytest.fixture
def acme_usage(acme, care):
    """Pooling off. austin: 120 SMS (100 allowance + 20 wallet), 30 min intl (7.5 wallet);
    berlin: 40 SMS (allowance); hq: 3 AI conversations (6 AI allowance)."""
    austin = acme.offices.get(slug="austin")
    credits_purchase(company=acme, amount="50", office=austin, actor=care)
    usage_ingest(
        company=acme,
        events=[
            event(
                "a1",
                office="austin",
                quantity="120",
                occurred_at=recent(30),
                user_label="Ann",
                phone_number="+15550001",
            ),
            event(
                "a2",
                office="austin",
                service="call_international",
                quantity="30",
                occurred_at=recent(20),
                user_label="Bob",
                phone_number="+15550002",
            ),
            event(
                "b1",
                office="berlin",
                quantity="40",
                occurred_at=recent(10),
                user_label="Carl",
                phone_number="+4930111",
            ),
            event("h1", office="hq", service="ai_agent", quantity="3", occurred_at=recent(5)),
        ],
    )
    return acme


def login(client, user: User):
    client.force_login(user)
    return client


def cell(html: str, row_marker: str, css: str) -> str:
    """Text of the first cell with class `css` in the table row marked `row_marker`
    (e.g. data-office="austin")."""
    import re

    start = html.index(row_marker)
    row = html[start : html.index("</tr>", start)]
    match = re.search(
        rf'class="num(?: [^"]*)? {css}(?=[ "])[^"]*"[^>]*>(?:<a [^>]*>)?([^<]*)<', row
    )
    assert match, f"no {css} cell in row {row_marker}"
    return match.group(1).strip()


def by_id(html: str, element_id: str) -> str:
    """Text content (tags stripped) of the element with this id, up to its closing tag."""
    import re

    match = re.search(rf'<(\w+)[^>]*id="{element_id}"[^>]*>', html)
    assert match, f"no element #{element_id}"
    tag = match.group(1)
    end = html.index(f"</{tag}>", match.end())
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html[match.end() : end])).strip()


def row_text(html: str, row_marker: str) -> str:
    """Text (tags stripped) of the table row marked `row_marker`."""
    import re

    start = html.index(row_marker)
    row = html[start : html.index("</tr>", start)]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
