"""Issue 12, point 10: the admin prints amounts and times as the portal does, lists API
keys with their status, and titles a usage record by its service."""

import re

from credits.services import credits_purchase
from tests.factories import company_factory, event
from usage.api_auth import api_key_create, api_key_revoke
from usage.models import UsageRecord
from usage.services import usage_ingest


def cells(html: str, css: str) -> list[str]:
    return [c.strip() for c in re.findall(rf'class="{css}"[^>]*>(?:<a [^>]*>)?([^<]*)<', html)]


def test_ledger_amounts_have_separators_and_times_the_companys_zone(care_client, services, care):
    # given: a company billed in Berlin buys 12,345.5 credits
    company = company_factory(slug="berlinco", billing_timezone="Europe/Berlin")
    entry = credits_purchase(
        company=company, amount="12345.5", office=company.offices.get(), actor=care
    )
    local = entry.created_at.astimezone(company.tz)
    # when
    html = care_client.get("/admin/credits/ledgerentry/").content.decode()
    # then
    assert "12,345.50" in cells(html, "field-amount_credits")
    assert f"{local:%Y-%m-%d %H:%M} {local:%Z}" in cells(html, "field-created_local")
    accounts = care_client.get("/admin/credits/account/").content.decode()
    assert "12,345.50" in cells(accounts, "field-balance_credits")


def test_usage_records_list_amounts_like_the_portal(care_client, company, care):
    credits_purchase(
        company=company, amount="2000", office=company.offices.get(slug="hq"), actor=care
    )
    usage_ingest(company=company, events=[event("big", quantity="1234.5")])
    html = care_client.get("/admin/usage/usagerecord/").content.decode()
    assert "1,234.50" in cells(html, "field-cost_credits")
    assert "1,134.50 (wallet)" in cells(html, "field-funded_from")


def test_api_key_list_shows_each_keys_status(care_client, company, care):
    active = api_key_create(company=company, name="billing sync")[0]
    revoked = api_key_create(company=company, name="old export")[0]
    api_key_revoke(api_key=revoked, actor=care)
    html = care_client.get("/admin/usage/apikey/").content.decode()
    # right after the name, before the long key prefix, so it stays on a narrow screen
    assert html.index("column-name") < html.index("column-status") < html.index("column-company")
    statuses = cells(html, "field-status")
    assert "active" in statuses
    assert any(s.startswith("revoked ") for s in statuses)
    assert active.name in html


def test_usage_record_title_names_its_service(care_client, company):
    usage_ingest(company=company, events=[event("e-1", service="call_international", quantity="8")])
    record = UsageRecord.objects.get()
    html = care_client.get(f"/admin/usage/usagerecord/{record.pk}/change/").content.decode()
    assert f"e-1: 8.0000 × {record.service.name} = 2.0000 credits" in html
    assert f"× {record.service_id} " not in html
