"""One office: allowance meters, wallet or pool, usage by service, the 30-day chart."""

import re

from credits.services import pooling_set
from offices.templatetags.portal_format import credits
from tests.factories import event
from tests.portal.conftest import by_id, login
from usage.selectors import DayUsage
from usage.services import usage_ingest
from usage.views import chart_bars


def test_office_page_shows_meters_wallet_and_services(client, acme_usage, austin_admin):
    login(client, austin_admin)
    html = client.get("/offices/austin/").content.decode()
    standard = by_id(html, "allowance-standard")
    assert "0.00 remaining of 100.00 included" in standard
    assert "10.00 remaining of 10.00 included" in by_id(html, "allowance-ai_agent")
    assert by_id(html, "funding").startswith("Office wallet 22.50")
    services = by_id(html, "by-service")
    assert "SMS" in services and "120 messages" in services
    assert "7.50" in services  # 30 international minutes at 0.25
    assert 'href="/usage/?office=' in html


def test_office_page_with_pooling_on_draws_from_the_pool(client, acme, care, acme_admin):
    pooling_set(company=acme, enabled=True, actor=care, reason="pool")
    login(client, acme_admin)
    text = by_id(client.get("/offices/berlin/").content.decode(), "funding")
    assert "Draws from the shared pool" in text


def test_chart_is_inline_svg_split_by_funding(client, acme_usage, acme_admin):
    login(client, acme_admin)
    html = client.get("/offices/austin/").content.decode()
    svg = html[html.index("<svg") : html.index("</svg>")]
    assert 'class="seg-allowance"' in svg  # 100 SMS from the allowance today
    assert 'class="seg-wallet"' in svg  # 27.5 from the wallet today
    assert 'class="seg-pool"' not in svg
    assert 'class="seg-uncovered"' not in svg
    assert len(re.findall(r'class="slot"', svg)) == 30


def test_chart_shows_uncovered_usage(client, acme, acme_admin):
    usage_ingest(company=acme, events=[event("u", office="berlin", quantity="150")])
    login(client, acme_admin)
    html = client.get("/offices/berlin/").content.decode()
    assert 'class="seg-uncovered"' in html[html.index("<svg") : html.index("</svg>")]
    assert "50.00 uncovered overage this period" in html


def test_chart_bars_scale_to_the_busiest_day():
    import datetime as dt
    from decimal import Decimal

    days = [
        DayUsage(dt.date(2026, 11, 1), allowance_part=Decimal("10")),
        DayUsage(
            dt.date(2026, 11, 2),
            allowance_part=Decimal("5"),
            pool_part=Decimal("3"),
            wallet_part=Decimal("2"),
            uncovered=Decimal("10"),
        ),
    ]
    chart = chart_bars(days)
    first, second = chart["bars"]
    assert [s["css"] for s in second["segments"]] == [
        "seg-allowance",
        "seg-pool",
        "seg-wallet",
        "seg-uncovered",
    ]
    # the busiest day (20) is twice as tall as the first; the axis ends on a round 20
    tallest = sum(s["h"] for s in second["segments"])
    assert abs(first["segments"][0]["h"] * 2 - tallest) < 0.05
    assert [t["value"] for t in chart["y_ticks"]] == [0, 5, 10, 15, 20]


def test_credits_format_has_separators_and_two_to_four_places():
    assert credits("1234567.5") == "1,234,567.50"
    assert credits("0.25") == "0.25"
    assert credits("0.1234") == "0.1234"
    assert credits("-30") == "-30.00"
    assert credits(None) == "—"
