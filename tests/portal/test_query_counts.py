"""Pages do a constant number of queries as offices and usage rows grow."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from credits.services import credits_purchase, pooling_set
from offices.services import office_addon_set
from tests.factories import AddOnFactory, event, office_factory
from tests.portal.conftest import login, recent
from usage.services import usage_ingest

PAGES = ["/balance/", "/offices/austin/", "/usage/", "/usage/export.csv", "/credits/add/"]


def queries_of(client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
        assert response.status_code == 200, url
        if response.streaming:
            b"".join(response.streaming_content)
    return len(ctx.captured_queries)


def grow(company, offices: int, rows: int, start: int = 0) -> None:
    addon = AddOnFactory(code="extra")
    created = [office_factory(company=company, slug=f"o{start + i}") for i in range(offices)]
    for office in created:
        office_addon_set(office=office, addon=addon, quantity=1)
    slugs = ["austin", "berlin", "hq"] + [o.slug for o in created]
    usage_ingest(
        company=company,
        events=[
            event(
                f"g{start}-{i}",
                office=slugs[i % len(slugs)],
                occurred_at=recent(i + 1),
                user_label=f"user {i}",
            )
            for i in range(rows)
        ],
    )


def test_company_admin_pages_do_not_grow_with_offices_and_rows(
    client, acme, care, acme_admin, django_assert_max_num_queries
):
    # given: 3 offices, 10 usage rows, pooling on with activity
    pooling_set(company=acme, enabled=True, actor=care, reason="pool")
    credits_purchase(company=acme, amount="100", actor=care)
    usage_ingest(
        company=acme, events=[event(f"s{i}", occurred_at=recent(i + 1)) for i in range(10)]
    )
    login(client, acme_admin)
    small = {url: queries_of(client, url) for url in PAGES}
    # when: 30 offices and 200 more rows
    grow(acme, offices=27, rows=200)
    for i in range(5):
        credits_purchase(company=acme, amount="10", actor=care, reference=f"r{i}")
    # then: no page needs more queries than before
    for url, count in small.items():
        with django_assert_max_num_queries(count):
            response = client.get(url)
            if response.streaming:
                b"".join(response.streaming_content)


def test_office_admin_pages_do_not_grow_with_offices_and_rows(
    client, acme, care, django_assert_max_num_queries
):
    from tests.factories import office_admin

    admin = office_admin(acme.offices.get(slug="austin"), username="oa")
    usage_ingest(
        company=acme,
        events=[event(f"s{i}", office="austin", occurred_at=recent(i + 1)) for i in range(10)],
    )
    login(client, admin)
    small = {url: queries_of(client, url) for url in PAGES}
    grow(acme, offices=27, rows=200)
    for url, count in small.items():
        with django_assert_max_num_queries(count):
            response = client.get(url)
            if response.streaming:
                b"".join(response.streaming_content)


def test_query_counts_are_small(client, acme, acme_admin):
    # A guard against accidental N+1s that happen to be constant at these sizes.
    login(client, acme_admin)
    # 12 before the pending credit requests on the balance page (SPEC §11): one query.
    assert queries_of(client, "/balance/") <= 13
    assert queries_of(client, "/usage/") <= 10
