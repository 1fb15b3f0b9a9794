"""Money controls through the services (SPEC §8): auto-recharge inside the charging
transaction, pool caps in allocation, low-balance alerts opened and resolved with every
balance change, bad input refused with nothing saved, and check_ledger's invariants 9–11.
Charging runs on both write paths (the ORM and the one PostgreSQL statement)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.checks import ledger_check
from core.db import ORM, POSTGRESQL
from core.errors import NotFound, ValidationFailed
from credits.controls import (
    alert_threshold_set,
    pool_cap_set,
    recharge_rule_delete,
    recharge_rule_set,
    webhook_set,
)
from credits.models import (
    Account,
    AccountKind,
    Alert,
    Allowance,
    CompanyControls,
    ControlChange,
    EntryType,
    LedgerEntry,
    PoolCap,
    RechargeRule,
)
from credits.services import credits_adjust, credits_purchase, pooling_set
from offices.models import CreditKind
from tests.credits.checks import assert_invariants
from tests.factories import company_factory, event
from usage.services import usage_ingest

D = Decimal
WRITERS = [ORM, POSTGRESQL]


def account(company, kind, office=None) -> Account:
    if kind == AccountKind.WALLET:
        return Account.objects.get(company=company, kind=kind, office__slug=office)
    return Account.objects.get(company=company, kind=kind)


def sms(company, prefix: str, n: int, office="hq", writer=None, quantity="1"):
    """`n` SMS events of `office` (1 credit each), in one batch."""
    return usage_ingest(
        company=company,
        events=[event(f"{prefix}-{i}", office=office, quantity=quantity) for i in range(n)],
        writer=writer,
    )


def open_alerts(company, kind="low_balance"):
    return list(Alert.objects.filter(company=company, kind=kind, resolved_at__isnull=True))


def assert_ledger_ok(company):
    assert_invariants(company)
    assert ledger_check([company.pk]).violations == []


# Auto-recharge (§8.1) ----------------------------------------------------------------


@pytest.mark.parametrize("writer", WRITERS)
def test_a_rule_recharges_just_before_the_draw_that_would_go_below_its_threshold(
    company, care, writer
):
    # given: hq's wallet holds 30, its allowance (100) is used up, a rule below 20 add 50
    hq = account(company, AccountKind.WALLET, "hq")
    credits_purchase(company=company, amount="30", office=hq.office, actor=care)
    sms(company, "allow", 100, writer=writer)
    rule = recharge_rule_set(
        company=company, account=hq, threshold="20", amount="50", monthly_limit=2, actor=care
    )
    # when: 5 events of 3 credits each: 30 → 27 → 24 → 21 → (would be 18: recharge) → …
    results = sms(company, "draw", 5, writer=writer, quantity="3")
    # then: one recharge, before the draw that would have gone below 20, in the same batch
    hq.refresh_from_db()
    assert hq.balance == D("30") + D("50") - D("15")
    recharges = LedgerEntry.objects.filter(account=hq, entry_type=EntryType.AUTO_RECHARGE)
    assert [(e.amount, e.balance_after) for e in recharges] == [(D("50"), D("80"))]
    (entry,) = recharges
    assert entry.reference.startswith(f"recharge-rule:{rule.pk}:")
    assert entry.reference.endswith(":1/2")
    assert f"rule #{rule.pk}" in entry.memo
    assert entry.usage_batch == results[0].record.batch
    assert all(r.record.uncovered == 0 for r in results)
    rule.refresh_from_db()
    assert rule.recharges == 1
    assert_ledger_ok(company)


@pytest.mark.parametrize("writer", WRITERS)
def test_at_most_one_recharge_per_event_and_at_most_the_monthly_limit(company, care, writer):
    # given: an empty AI account, no AI allowance left, a rule adding 1 below 100, limit 3
    ai = account(company, AccountKind.AI_AGENT)
    usage_ingest(
        company=company, events=[event("ai-allow", service="ai_agent", quantity="5")]
    )  # 10 AI credits: the allowance
    recharge_rule_set(
        company=company, account=ai, threshold="100", amount="1", monthly_limit=3, actor=care
    )
    # when: one event costing 4 (2 conversations): one recharge of 1 only, 3 uncovered
    first = usage_ingest(
        company=company,
        events=[event("ai-1", service="ai_agent", quantity="2")],
        writer=writer,
    )
    assert first[0].record.ai_part == D("1") and first[0].record.uncovered == D("3")
    # and then four more events: two more recharges, then the limit stops them
    usage_ingest(
        company=company,
        events=[event(f"ai-{i}", service="ai_agent", quantity="1") for i in range(2, 6)],
        writer=writer,
    )
    assert LedgerEntry.objects.filter(account=ai, entry_type=EntryType.AUTO_RECHARGE).count() == 3
    ai.refresh_from_db()
    assert ai.balance == 0
    assert_ledger_ok(company)


@pytest.mark.parametrize("writer", WRITERS)
def test_a_batch_reads_the_rules_only_of_accounts_that_have_one(company, care, writer):
    # given: a rule on the AI account only; hq's wallet holds credits and has no rule
    ai, hq = account(company, AccountKind.AI_AGENT), account(company, AccountKind.WALLET, "hq")
    credits_purchase(company=company, amount="50", office=hq.office, actor=care)
    sms(company, "allow", 100, writer=writer)
    rule = recharge_rule_set(company=company, account=ai, threshold="5", amount="9", actor=care)
    ai.refresh_from_db()
    hq.refresh_from_db()
    assert (ai.has_recharge_rule, hq.has_recharge_rule) == (True, False)
    # when: an event draws on hq's wallet
    with CaptureQueriesContext(connection) as queries:
        sms(company, "plain", 1, writer=writer)
    # then: no statement reads the rules
    assert not [q for q in queries.captured_queries if RechargeRule._meta.db_table in q["sql"]]
    # and an AI event does read them, and recharges
    usage_ingest(company=company, events=[event("ai-allow", service="ai_agent", quantity="5")])
    with CaptureQueriesContext(connection) as queries:
        usage_ingest(company=company, events=[event("ai-1", service="ai_agent")], writer=writer)
    assert [q for q in queries.captured_queries if RechargeRule._meta.db_table in q["sql"]]
    assert LedgerEntry.objects.filter(account=ai, entry_type=EntryType.AUTO_RECHARGE).count() == 1
    # and once the rule is gone, the account says so and nothing reads the rules again
    recharge_rule_delete(company=company, rule=rule, actor=care)
    ai.refresh_from_db()
    assert not ai.has_recharge_rule
    with CaptureQueriesContext(connection) as queries:
        usage_ingest(company=company, events=[event("ai-2", service="ai_agent")], writer=writer)
    assert not [q for q in queries.captured_queries if RechargeRule._meta.db_table in q["sql"]]
    assert LedgerEntry.objects.filter(account=ai, entry_type=EntryType.AUTO_RECHARGE).count() == 1
    assert_ledger_ok(company)


def test_wallet_rules_sleep_while_pooling_is_on(company, care):
    # given: a rule on austin's wallet, then pooling on with 10 in the pool
    austin = account(company, AccountKind.WALLET, "austin")
    recharge_rule_set(company=company, account=austin, threshold="50", amount="40", actor=care)
    pooling_set(company=company, enabled=True, actor=care, reason="test")
    credits_purchase(company=company, amount="10", actor=care)
    company.refresh_from_db()
    # when: austin uses its allowance and 20 more
    sms(company, "a", 120, office="austin")
    # then: the pool paid 10, 10 is uncovered, and the wallet rule did nothing
    assert not LedgerEntry.objects.filter(entry_type=EntryType.AUTO_RECHARGE).exists()
    assert account(company, AccountKind.WALLET, "austin").balance == 0
    assert_ledger_ok(company)


# Pool caps (§8.3) ---------------------------------------------------------------------


@pytest.mark.parametrize("writer", WRITERS)
def test_a_pool_cap_makes_draws_beyond_it_uncovered_and_protects_the_others(company, care, writer):
    # given: pooling on, 100 in the pool, austin capped at 15
    pooling_set(company=company, enabled=True, actor=care, reason="test")
    credits_purchase(company=company, amount="100", actor=care)
    company.refresh_from_db()
    austin = company.offices.get(slug="austin")
    pool_cap_set(company=company, office=austin, cap="15", actor=care)
    # when: austin uses its allowance and 30 more; berlin its allowance and 20 more
    sms(company, "a", 130, office="austin", writer=writer)
    sms(company, "b", 120, office="berlin", writer=writer)
    # then: austin drew 15 from the pool, 15 uncovered; berlin drew all it needed
    rows = {
        a.office.slug: a
        for a in Allowance.objects.filter(company=company, kind=CreditKind.STANDARD).select_related(
            "office"
        )
    }
    assert (rows["austin"].pool_drawn, rows["austin"].uncovered) == (D("15"), D("15"))
    assert (rows["berlin"].pool_drawn, rows["berlin"].uncovered) == (D("20"), D("0"))
    assert account(company, AccountKind.POOL).balance == D("65")
    assert_ledger_ok(company)


def test_a_cap_change_applies_to_events_charged_after_it(company, care):
    pooling_set(company=company, enabled=True, actor=care, reason="test")
    credits_purchase(company=company, amount="100", actor=care)
    company.refresh_from_db()
    austin = company.offices.get(slug="austin")
    sms(company, "a", 110, office="austin")  # 10 from the pool before any cap
    # when: a cap of 5 (below what was drawn), then more usage
    pool_cap_set(company=company, office=austin, cap="5", actor=care)
    sms(company, "b", 3, office="austin")
    row = Allowance.objects.get(office=austin, kind=CreditKind.STANDARD)
    assert (row.pool_drawn, row.uncovered, row.pool_cap) == (D("10"), D("3"), D("5"))
    # when: the cap rises to 12: 2 more may come from the pool
    pool_cap_set(company=company, office=austin, cap="12", actor=care)
    sms(company, "c", 3, office="austin")
    row.refresh_from_db()
    assert (row.pool_drawn, row.uncovered) == (D("12"), D("4"))
    # and removing it lifts the limit
    pool_cap_set(company=company, office=austin, cap=None, actor=care)
    sms(company, "d", 3, office="austin")
    row.refresh_from_db()
    assert (row.pool_drawn, row.uncovered, row.pool_cap) == (D("15"), D("4"), None)
    assert not PoolCap.objects.filter(office=austin).exists()
    assert_ledger_ok(company)


# Low-balance alerts (§8.2) ----------------------------------------------------------------


def test_alerts_open_and_resolve_with_usage_adjustments_purchases_and_transfers(
    company, care, django_capture_on_commit_callbacks
):
    hq = account(company, AccountKind.WALLET, "hq")
    credits_purchase(company=company, amount="30", office=hq.office, actor=care)
    # given: a threshold of 25 on hq's wallet (30: not low)
    alert_threshold_set(company=company, account=hq, value="25", actor=care)
    assert open_alerts(company) == []
    # when usage takes it to 20 → one alert, notified only after commit
    sms(company, "allow", 100)
    with django_capture_on_commit_callbacks() as callbacks:
        sms(company, "u", 10)
    (alert,) = open_alerts(company)
    assert (alert.account_id, alert.threshold, alert.balance) == (hq.pk, D("25"), D("20"))
    assert len(callbacks) == 1
    # staying low does not re-alert
    sms(company, "v", 5)
    assert Alert.objects.filter(company=company).count() == 1
    # an adjustment back to ≥ 25 resolves it, in the same transaction
    hq.refresh_from_db()
    credits_adjust(account=hq, amount="10", memo="goodwill", actor=care)
    alert.refresh_from_db()
    assert alert.resolved_at is not None and alert.resolved_balance == D("25")
    # a negative adjustment opens a new one; a purchase resolves it
    credits_adjust(account=hq, amount="-1", memo="fix", actor=care)
    assert len(open_alerts(company)) == 1
    credits_purchase(company=company, amount="5", office=hq.office, actor=care)
    assert open_alerts(company) == []
    # a pooling transfer empties the wallet: it sleeps, so no alert; the pool's default
    # threshold applies and the transfer into it is what decides
    alert_threshold_set(company=company, value="40", actor=care)
    pooling_set(company=company, enabled=True, actor=care, reason="test")
    low = {a.account.kind for a in open_alerts(company)}
    assert low == {AccountKind.POOL, AccountKind.AI_AGENT}  # pool 29 < 40; AI 0 < 40
    assert_ledger_ok(company)


def test_an_alert_opens_when_usage_goes_uncovered_because_a_balance_is_empty(company, care):
    # given: no threshold at all, an empty wallet
    # when: berlin's usage goes beyond its allowance
    sms(company, "b", 105, office="berlin")
    # then: one uncovered-usage alert for berlin's wallet, and not again on the next batch
    (alert,) = open_alerts(company, kind="uncovered")
    assert alert.account == account(company, AccountKind.WALLET, "berlin")
    sms(company, "c", 3, office="berlin")
    assert Alert.objects.filter(kind="uncovered").count() == 1
    # a purchase refills it: resolved
    credits_purchase(company=company, amount="5", office=alert.account.office, actor=care)
    assert open_alerts(company, kind="uncovered") == []
    assert_ledger_ok(company)


def test_a_new_office_gets_the_default_threshold_and_its_alert(company, care):
    from tests.factories import office_factory

    alert_threshold_set(company=company, value="10", actor=care)
    office = office_factory(company=company, slug="denver")
    wallet = account(company, AccountKind.WALLET, "denver")
    assert wallet.alert_threshold == D("10")
    assert [a.account_id for a in open_alerts(company)].count(wallet.pk) == 1
    assert office.company_id == company.pk
    assert_ledger_ok(company)


# Audit, scope and bad input -----------------------------------------------------------------


def test_every_change_is_audited_with_who_old_and_new(company, care):
    ai = account(company, AccountKind.AI_AGENT)
    rule = recharge_rule_set(company=company, account=ai, threshold="5", amount="10", actor=care)
    recharge_rule_set(company=company, account=ai, threshold="6", amount="10", actor=care)
    recharge_rule_delete(company=company, rule=rule, actor=care)
    pool_cap_set(company=company, office=company.offices.get(slug="austin"), cap="7", actor=care)
    alert_threshold_set(company=company, value="3", actor=care)
    changes = list(ControlChange.objects.filter(company=company).order_by("id"))
    assert [(c.old_value, c.new_value) for c in changes] == [
        ("", "below 5.0000 add 10.0000, at most 3 a month"),
        (
            "below 5.0000 add 10.0000, at most 3 a month",
            "below 6.0000 add 10.0000, at most 3 a month",
        ),
        ("below 6.0000 add 10.0000, at most 3 a month", ""),
        ("", "7.0000"),
        ("", "3.0000"),
    ]
    assert all(c.changed_by == care and c.created_at for c in changes)


BAD_AMOUNTS = ["-1", "0", "NaN", "Infinity", "1.00001", "abc", "", "1e400"]


@pytest.mark.parametrize("bad", BAD_AMOUNTS)
@pytest.mark.parametrize("field", ["threshold", "amount"])
def test_bad_rule_values_are_refused_and_nothing_saved(company, care, bad, field):
    values = {"threshold": "5", "amount": "10"} | {field: bad}
    with pytest.raises(ValidationFailed) as error:
        recharge_rule_set(
            company=company, account=account(company, AccountKind.POOL), actor=care, **values
        )
    assert field in error.value.message
    assert not RechargeRule.objects.exists() and not ControlChange.objects.exists()


@pytest.mark.parametrize("bad", ["0", "-1", "1.5", "NaN", "32", "x"])
def test_bad_monthly_limits_are_refused(company, care, bad):
    with pytest.raises(ValidationFailed, match="monthly_limit"):
        recharge_rule_set(
            company=company,
            account=account(company, AccountKind.POOL),
            threshold="5",
            amount="10",
            monthly_limit=bad,
            actor=care,
        )
    assert not RechargeRule.objects.exists()


def test_a_recharge_over_the_purchase_maximum_is_refused(company, care, settings):
    settings.CREDITS_PURCHASE_MAX = "1000"
    with pytest.raises(ValidationFailed, match="At most 1,000"):
        recharge_rule_set(
            company=company,
            account=account(company, AccountKind.POOL),
            threshold="5",
            amount="1000.0001",
            actor=care,
        )
    assert not RechargeRule.objects.exists()


@pytest.mark.parametrize("bad", ["-1", "NaN", "0.00001", "x"])
def test_bad_caps_and_thresholds_are_refused(company, care, bad):
    with pytest.raises(ValidationFailed):
        pool_cap_set(
            company=company, office=company.offices.get(slug="austin"), cap=bad, actor=care
        )
    with pytest.raises(ValidationFailed):
        alert_threshold_set(company=company, value=bad, actor=care)
    with pytest.raises(ValidationFailed):
        alert_threshold_set(company=company, value="0", actor=care)
    assert not PoolCap.objects.exists() and not ControlChange.objects.exists()
    assert not CompanyControls.objects.filter(alert_threshold__isnull=False).exists()


def test_a_cap_of_zero_is_allowed(company, care):
    pool_cap_set(company=company, office=company.offices.get(slug="austin"), cap="0", actor=care)
    assert PoolCap.objects.get().cap == 0


def test_another_companys_balance_or_office_is_not_found(company, care, services):
    globex = company_factory(slug="globex", offices=("paris",))
    theirs = account(globex, AccountKind.POOL)
    with pytest.raises(NotFound):
        recharge_rule_set(company=company, account=theirs, threshold="1", amount="1", actor=care)
    with pytest.raises(NotFound):
        alert_threshold_set(company=company, account=theirs, value="1", actor=care)
    with pytest.raises(NotFound):
        pool_cap_set(company=company, office=globex.offices.get(slug="paris"), cap="1", actor=care)
    rule = recharge_rule_set(company=globex, account=theirs, threshold="1", amount="1", actor=care)
    with pytest.raises(NotFound):
        recharge_rule_delete(company=company, rule=rule, actor=care)
    assert RechargeRule.objects.count() == 1 and not PoolCap.objects.exists()


@pytest.mark.parametrize(
    "url, debug, ok",
    [
        ("https://hooks.example.com/credits", False, True),
        ("http://hooks.example.com/credits", False, False),
        ("http://127.0.0.1:8080/hook", False, False),
        ("http://127.0.0.1:8080/hook", True, True),
        ("http://localhost/hook", True, True),
        ("http://10.0.0.5/hook", True, False),
        ("https://10.0.0.5/hook", False, False),
        ("ftp://example.com/x", True, False),
        ("not a url", False, False),
    ],
)
def test_webhook_urls_must_be_https_except_loopback_under_debug(
    company, care, settings, url, debug, ok
):
    settings.DEBUG = debug
    if ok:
        secret = webhook_set(company=company, url=url, actor=care)
        assert len(secret) >= 32
        assert CompanyControls.objects.get(company=company).webhook_url == url
    else:
        with pytest.raises(ValidationFailed, match="webhook_url"):
            webhook_set(company=company, url=url, actor=care)
        assert not CompanyControls.objects.exclude(webhook_url="").exists()


# check_ledger finds what breaks invariants 9–11 ------------------------------------------


def test_check_ledger_reports_a_draw_over_the_cap(company, care):
    pooling_set(company=company, enabled=True, actor=care, reason="test")
    credits_purchase(company=company, amount="100", actor=care)
    company.refresh_from_db()
    austin = company.offices.get(slug="austin")
    pool_cap_set(company=company, office=austin, cap="5", actor=care)
    sms(company, "a", 110, office="austin")
    assert ledger_check([company.pk]).violations == []
    Allowance.objects.filter(office=austin, kind=CreditKind.STANDARD).update(pool_drawn=D("9"))
    assert any(v.startswith("§6.9") for v in ledger_check([company.pk]).violations)


def test_check_ledger_reports_recharges_over_the_limit(company, care):
    hq = account(company, AccountKind.WALLET, "hq")
    credits_purchase(company=company, amount="1", office=hq.office, actor=care)
    (entry,) = LedgerEntry.objects.filter(account=hq)
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(
                account=hq,
                company=company,
                entry_type=EntryType.AUTO_RECHARGE,
                amount=D("1"),
                balance_after=D("2"),
                reference="recharge-rule:1:2026-01:4/3",
            )
        ]
    )
    Account.objects.filter(pk=hq.pk).update(balance=D("2"))
    violations = ledger_check([company.pk]).violations
    assert any(v.startswith("§6.10") and "over its monthly limit 3" in v for v in violations)


def test_check_ledger_reports_a_recharge_rule_flag_out_of_step(company, care):
    ai, pool = account(company, AccountKind.AI_AGENT), account(company, AccountKind.POOL)
    recharge_rule_set(company=company, account=ai, threshold="5", amount="9", actor=care)
    assert ledger_check([company.pk]).violations == []
    Account.objects.filter(pk=ai.pk).update(has_recharge_rule=False)
    Account.objects.filter(pk=pool.pk).update(has_recharge_rule=True)
    violations = [v for v in ledger_check([company.pk]).violations if v.startswith("§6.10")]
    assert len(violations) == 2
    assert any(
        f"account {ai.pk} " in v and "no recharge rule, but has one" in v for v in violations
    )
    assert any(
        f"account {pool.pk} " in v and "a recharge rule, but has none" in v for v in violations
    )


def test_check_ledger_reports_a_low_balance_without_its_alert(company, care):
    alert_threshold_set(company=company, value="10", actor=care)
    assert ledger_check([company.pk]).violations == []
    Alert.objects.filter(company=company).update(resolved_at="2026-01-01T00:00:00Z")
    violations = ledger_check([company.pk]).violations
    assert any(v.startswith("§6.11") and "0 open low-balance alerts" in v for v in violations)


def test_lowering_then_raising_the_limit_keeps_counting_this_periods_recharges(company, care):
    # given: an empty AI account past its allowance, a rule with limit 2, used twice
    ai = account(company, AccountKind.AI_AGENT)
    usage_ingest(company=company, events=[event("allow", service="ai_agent", quantity="5")])
    recharge_rule_set(
        company=company, account=ai, threshold="100", amount="1", monthly_limit=2, actor=care
    )
    usage_ingest(company=company, events=[event(f"a{i}", service="ai_agent") for i in range(2)])
    # when: the limit drops to 1 (no more this period) and then rises to 3 (one more)
    recharge_rule_set(
        company=company, account=ai, threshold="100", amount="1", monthly_limit=1, actor=care
    )
    usage_ingest(company=company, events=[event("b", service="ai_agent")])
    recharge_rule_set(
        company=company, account=ai, threshold="100", amount="1", monthly_limit=3, actor=care
    )
    usage_ingest(company=company, events=[event(f"c{i}", service="ai_agent") for i in range(3)])
    # then: three recharges in all, numbered 1, 2, 3
    refs = LedgerEntry.objects.filter(account=ai, entry_type=EntryType.AUTO_RECHARGE)
    assert sorted(e.reference.rsplit(":", 1)[1] for e in refs) == ["1/2", "2/2", "3/3"]
    assert_ledger_ok(company)


def test_a_threshold_or_cap_may_exceed_one_purchase(company, care, settings):
    settings.CREDITS_PURCHASE_MAX = "1000"
    alert_threshold_set(company=company, value="2000000", actor=care)
    pool_cap_set(company=company, office=company.offices.get(slug="hq"), cap="5000", actor=care)
    assert CompanyControls.objects.get(company=company).alert_threshold == D("2000000")
    with pytest.raises(ValidationFailed):
        alert_threshold_set(company=company, value="10000000000000", actor=care)


def test_care_sets_a_rule_and_a_cap_in_the_admin(company, care, client):
    client.force_login(care)
    pool = account(company, AccountKind.POOL)
    bad = client.post(
        "/admin/credits/rechargerule/add/",
        {"account": pool.pk, "threshold": "-5", "amount": "10", "monthly_limit": "3"},
    )
    assert bad.status_code == 200 and not RechargeRule.objects.exists()
    response = client.post(
        "/admin/credits/rechargerule/add/",
        {"account": pool.pk, "threshold": "5", "amount": "10", "monthly_limit": "2"},
    )
    assert response.status_code == 302
    rule = RechargeRule.objects.get()
    assert (rule.company, rule.threshold, rule.monthly_limit) == (company, D("5"), 2)
    austin = company.offices.get(slug="austin")
    response = client.post("/admin/credits/poolcap/add/", {"office": austin.pk, "cap": "12"})
    assert response.status_code == 302
    assert PoolCap.objects.get(office=austin).cap == D("12")
    assert {c.changed_by for c in ControlChange.objects.all()} == {care}
    assert ControlChange.objects.count() == 2


def threshold_url(balance: Account) -> str:
    return f"/admin/credits/account/{balance.pk}/threshold/"


def test_care_sets_a_balances_threshold_override_in_the_admin(company, care, client):
    # given: hq's wallet holds 30, the company default threshold is 10 (not low)
    hq = account(company, AccountKind.WALLET, "hq")
    credits_purchase(company=company, amount="30", office=hq.office, actor=care)
    alert_threshold_set(company=company, value="10", actor=care)
    client.force_login(care)
    # the balance's page links to the threshold page, which shows the default
    page = client.get(f"/admin/credits/account/{hq.pk}/change/").content.decode()
    assert threshold_url(hq) in page
    form = client.get(threshold_url(hq))
    assert form.status_code == 200 and "10.0000" in form.content.decode()
    crumbs = form.content.decode().split('class="breadcrumbs"')[1].split("</div>")[0]
    assert f'href="/admin/credits/account/{hq.pk}/change/">{hq}</a>' in crumbs
    assert crumbs.rstrip().endswith("Low-balance threshold")
    # when: care sets hq's override to 50
    response = client.post(threshold_url(hq), {"threshold": "50"})
    # then: saved through the service: the override, the threshold in force, the audit,
    # and the alert, opened at once
    assert response.status_code == 302
    assert response["Location"] == f"/admin/credits/account/{hq.pk}/change/"
    hq.refresh_from_db()
    assert (hq.threshold_override, hq.alert_threshold, hq.low_balance_alert) == (
        D("50"),
        D("50"),
        True,
    )
    change = ControlChange.objects.get(setting__startswith="Low-balance threshold of")
    assert (change.old_value, change.new_value, change.changed_by) == ("", "50.0000", care)
    assert [a.balance for a in open_alerts(company) if a.account == hq] == [D("30")]
    # and clearing it falls back to the default, resolving the alert
    assert client.post(threshold_url(hq), {"threshold": ""}).status_code == 302
    hq.refresh_from_db()
    assert (hq.threshold_override, hq.alert_threshold) == (None, D("10"))
    assert [a for a in open_alerts(company) if a.account == hq] == []
    assert_ledger_ok(company)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("-5", "Must be more than zero."),
        ("0", "Must be more than zero."),
        ("NaN", "Enter a finite number."),
        ("1.00001", "At most 4 decimal places."),
        ("ten", "Enter a number."),
        ("10000000000000", "At most 1,000,000,000,000 credits."),
    ],
)
def test_a_bad_threshold_override_shows_its_error_in_the_admin_and_saves_nothing(
    company, care, client, bad, message
):
    hq = account(company, AccountKind.WALLET, "hq")
    alert_threshold_set(company=company, account=hq, value="7", actor=care)
    changes = ControlChange.objects.count()
    client.force_login(care)
    response = client.post(threshold_url(hq), {"threshold": bad})
    assert response.status_code == 400
    assert message in response.content.decode()
    hq.refresh_from_db()
    assert hq.threshold_override == D("7")
    assert ControlChange.objects.count() == changes


def test_staff_without_the_controls_permission_cannot_set_a_threshold_override(
    company, care, client
):
    from django.contrib.auth.models import Permission

    from tests.factories import UserFactory

    # given: staff who may view balances, but not change the company's controls
    staffer = UserFactory(username="staffer", is_staff=True)
    staffer.user_permissions.add(
        Permission.objects.get(content_type__app_label="credits", codename="view_account")
    )
    hq = account(company, AccountKind.WALLET, "hq")
    client.force_login(staffer)
    # then: the balance's page shows no link, and the threshold page refuses every step
    page = client.get(f"/admin/credits/account/{hq.pk}/change/")
    assert page.status_code == 200 and threshold_url(hq) not in page.content.decode()
    assert client.get(threshold_url(hq)).status_code == 403
    assert client.post(threshold_url(hq), {"threshold": "50"}).status_code == 403
    hq.refresh_from_db()
    assert hq.threshold_override is None
    assert not ControlChange.objects.exists()
    # and an unknown balance is not found, even for care
    client.force_login(care)
    assert client.get("/admin/credits/account/999999/threshold/").status_code == 404


def test_the_control_audit_is_append_only_in_the_database(company, care):
    from django.db import connection, transaction
    from django.db.utils import DatabaseError

    if connection.vendor != "postgresql":
        pytest.skip("the append-only trigger is PostgreSQL's")
    alert_threshold_set(company=company, value="3", actor=care)
    change = ControlChange.objects.get()
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE credits_controlchange SET new_value = '9' WHERE id = %s", [change.pk]
        )
    change.refresh_from_db()
    assert change.new_value == "3.0000"
