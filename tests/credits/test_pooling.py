"""SPEC §4: turning pooling on and off, and where purchased credits land (SPEC §2)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.errors import PermissionDenied, ValidationFailed
from credits.models import Account, AccountKind, Allowance, EntryType, LedgerEntry, PoolingChange
from credits.services import credits_purchase, pooling_preview, pooling_set
from offices.models import Company, CreditKind, Office, OfficeAddOn
from offices.services import office_addon_set
from tests.credits.checks import assert_invariants, balances
from tests.factories import (
    AddOnFactory,
    UserFactory,
    company_admin,
    event,
    office_admin,
)
from usage.services import usage_ingest

D = Decimal


def buy(company, care, amount, office=None, kind=CreditKind.STANDARD):
    office_obj = company.offices.get(slug=office) if office else None
    return credits_purchase(
        company=company, amount=amount, office=office_obj, kind=kind, actor=care
    )


def total(company) -> Decimal:
    return sum(balances(company).values(), D(0))


def everything(company) -> tuple:
    """All that a refused or no-op toggle must leave exactly as it was."""
    company.refresh_from_db()
    return (
        company.pooling_enabled,
        company.pooling_changed_at,
        balances(company),
        LedgerEntry.objects.count(),
        PoolingChange.objects.count(),
    )


def test_turning_pooling_on_moves_every_wallet_into_the_pool(company, care):
    # given: hq 10, austin 20.5, berlin nothing; AI credits 7
    buy(company, care, "10", office="hq")
    buy(company, care, "20.5", office="austin")
    buy(company, care, "7", kind=CreditKind.AI_AGENT)
    # when
    change = pooling_set(company=company, enabled=True, actor=care, reason="Consolidate billing")
    # then: the balances
    company.refresh_from_db()
    assert company.pooling_enabled is True
    assert company.pooling_changed_at is not None
    assert balances(company) == {
        "pool": D("30.5"),
        "ai": D("7"),
        ("wallet", "hq"): 0,
        ("wallet", "austin"): 0,
        ("wallet", "berlin"): 0,
    }
    # the audit record
    assert (change.enabled, change.reason, change.changed_by, change.amount_moved) == (
        True,
        "Consolidate billing",
        care,
        D("30.5"),
    )
    assert sorted((m["from"], m["to"], D(m["amount"])) for m in change.moves) == [
        ("Austin wallet", "Company pool", D("20.5")),
        ("HQ wallet", "Company pool", D("10")),
    ]
    # a pair of ledger entries per office that had credits, none for the empty one
    entries = LedgerEntry.objects.filter(pooling_change=change).select_related("account__office")
    pairs = sorted(
        (e.account.kind, e.account.office.slug if e.account.office else None, e.amount)
        for e in entries
    )
    assert pairs == [
        (AccountKind.POOL, None, D("10")),
        (AccountKind.POOL, None, D("20.5")),
        (AccountKind.WALLET, "austin", D("-20.5")),
        (AccountKind.WALLET, "hq", D("-10")),
    ]
    assert {e.entry_type for e in entries} == {EntryType.POOLING_TRANSFER}
    assert {e.created_by for e in entries} == {care}
    assert {e.reference for e in entries} == {f"pooling-change:{change.pk}"}
    assert all("Consolidate billing" in e.memo for e in entries)
    assert_invariants(company)


def test_turning_pooling_off_moves_the_pool_to_the_primary_offices_wallet(company, care):
    # given: pooling on, 15 from wallets + 40 bought into the pool
    buy(company, care, "15", office="berlin")
    pooling_set(company=company, enabled=True, actor=care, reason="on")
    buy(company, care, "40")
    # when
    change = pooling_set(company=company, enabled=False, actor=care, reason="Back to offices")
    # then
    company.refresh_from_db()
    assert company.pooling_enabled is False
    assert balances(company) == {
        "pool": 0,
        "ai": 0,
        ("wallet", "hq"): D("55"),
        ("wallet", "austin"): 0,
        ("wallet", "berlin"): 0,
    }
    assert (change.enabled, change.amount_moved, change.reason) == (
        False,
        D("55"),
        "Back to offices",
    )
    assert [(m["from"], m["to"], D(m["amount"])) for m in change.moves] == [
        ("Company pool", "HQ wallet", D("55"))
    ]
    entries = LedgerEntry.objects.filter(pooling_change=change)
    assert sorted((e.account.kind, e.amount, e.balance_after) for e in entries) == [
        (AccountKind.POOL, D("-55"), 0),
        (AccountKind.WALLET, D("55"), D("55")),
    ]
    assert_invariants(company)


def test_toggling_with_nothing_to_move_writes_the_record_but_no_entries(company, care):
    change = pooling_set(company=company, enabled=True, actor=care, reason="empty")
    assert (change.amount_moved, change.moves) == (0, [])
    assert not LedgerEntry.objects.exists()
    assert Company.objects.get(pk=company.pk).pooling_enabled is True


@pytest.mark.parametrize("state", [True, False])
def test_setting_the_current_state_returns_none_and_changes_nothing(company, care, state):
    # given
    buy(company, care, "12", office="austin")
    if state:
        pooling_set(company=company, enabled=True, actor=care, reason="on")
    before = everything(company)
    # when
    result = pooling_set(company=company, enabled=state, actor=care, reason="again")
    # then
    assert result is None
    assert everything(company) == before
    assert pooling_preview(company=company, enabled=state) == []


def test_pooling_round_trips_conserve_credits(company, care):
    # given: credits in every kind of balance, some used
    buy(company, care, "33.3333", office="hq")
    buy(company, care, "12.5", office="austin")
    buy(company, care, "9", office="berlin")
    buy(company, care, "20", kind=CreditKind.AI_AGENT)
    usage_ingest(company=company, events=[event("u1", office="austin", quantity="105")])
    for step, enabled in enumerate([True, False, True, False, True]):
        before = total(company)
        # when
        change = pooling_set(company=company, enabled=enabled, actor=care, reason=f"step {step}")
        # then: nothing made up or lost, and the record says what moved
        assert total(company) == before == D("69.8333")
        moved = LedgerEntry.objects.filter(pooling_change=change)
        assert sum(e.amount for e in moved) == 0
        assert change.amount_moved == sum(e.amount for e in moved if e.amount > 0)
        assert_invariants(company)
    assert balances(company)["pool"] == D("49.8333")


def test_pooling_leaves_plans_addons_and_allowances_as_they_were(company, care):
    # given: an add-on, used allowances of both kinds
    addon = AddOnFactory(code="extra", included_standard=D("25"))
    office_addon_set(office=company.offices.get(slug="berlin"), addon=addon, quantity=2)
    buy(company, care, "5", office="berlin")
    usage_ingest(
        company=company,
        events=[
            event("a", office="berlin", quantity="60"),
            event("b", office="hq", service="ai_agent", quantity="2"),
        ],
    )

    def catalog():
        return (
            list(Office.objects.order_by("pk").values_list("pk", "plan_id", "is_primary", "name")),
            list(
                OfficeAddOn.objects.order_by("pk").values_list("office_id", "addon_id", "quantity")
            ),
            list(Allowance.objects.order_by("pk").values()),
        )

    before = catalog()
    # when
    pooling_set(company=company, enabled=True, actor=care, reason="on")
    on = catalog()
    pooling_set(company=company, enabled=False, actor=care, reason="off")
    # then
    assert on == before
    assert catalog() == before


@pytest.mark.parametrize("reason", ["", "   ", None, "why\x00"])
def test_a_reason_is_required(company, care, reason):
    buy(company, care, "8", office="austin")
    before = everything(company)
    with pytest.raises(ValidationFailed) as caught:
        pooling_set(company=company, enabled=True, actor=care, reason=reason)
    assert caught.value.errors[0]["field"] == "reason"
    assert everything(company) == before


@pytest.mark.parametrize("enabled", ["False", "0", "true", 1, None])
def test_the_new_state_must_be_a_boolean(company, care, enabled):
    # "False" and "0" are truthy in Python but saved as False by the BooleanField: the
    # wallets would move into the pool while the flag stayed off.
    buy(company, care, "8", office="austin")
    before = everything(company)
    with pytest.raises(ValidationFailed) as caught:
        pooling_set(company=company, enabled=enabled, actor=care, reason="typo")
    assert caught.value.errors[0]["field"] == "enabled"
    assert everything(company) == before
    assert_invariants(company)


@pytest.mark.parametrize(
    "who",
    ["nobody", "company_admin", "office_admin", "plain_staff", "customer"],
)
def test_only_holders_of_the_pooling_permission_may_toggle(company, care, who):
    # given
    buy(company, care, "8", office="austin")
    actor = {
        "nobody": lambda: None,
        "company_admin": lambda: company_admin(company),
        "office_admin": lambda: office_admin(company.offices.get(slug="austin")),
        "plain_staff": lambda: UserFactory(username="staff", is_staff=True),
        "customer": lambda: UserFactory(username="someone"),
    }[who]()
    before = everything(company)
    # when / then, in both directions
    with pytest.raises(PermissionDenied) as caught:
        pooling_set(company=company, enabled=True, actor=actor, reason="please")
    assert caught.value.status_code == 403
    assert everything(company) == before
    pooling_set(company=company, enabled=True, actor=care, reason="on")
    before = everything(company)
    with pytest.raises(PermissionDenied):
        pooling_set(company=company, enabled=False, actor=actor, reason="please")
    assert everything(company) == before


def test_preview_announces_exactly_what_the_toggle_moves(company, care):
    buy(company, care, "4", office="hq")
    buy(company, care, "6", office="berlin")
    preview = pooling_preview(company=company, enabled=True)
    change = pooling_set(company=company, enabled=True, actor=care, reason="on")
    assert sorted((m.source, m.target, m.amount) for m in preview if m.amount) == sorted(
        (m["from"], m["to"], D(m["amount"])) for m in change.moves
    )
    company.refresh_from_db()
    buy(company, care, "5")
    (back,) = pooling_preview(company=company, enabled=False)
    assert (back.source, back.target, back.amount) == ("Company pool", "HQ wallet", D("15"))


# pooling on?, credit kind, office chosen, receiving account (kind, office slug)
PURCHASE_ROUTES = [
    (False, CreditKind.STANDARD, "austin", (AccountKind.WALLET, "austin")),
    (False, CreditKind.STANDARD, "hq", (AccountKind.WALLET, "hq")),
    (True, CreditKind.STANDARD, "austin", (AccountKind.POOL, None)),
    (True, CreditKind.STANDARD, None, (AccountKind.POOL, None)),
    (False, CreditKind.AI_AGENT, "austin", (AccountKind.AI_AGENT, None)),
    (False, CreditKind.AI_AGENT, None, (AccountKind.AI_AGENT, None)),
    (True, CreditKind.AI_AGENT, "berlin", (AccountKind.AI_AGENT, None)),
]


@pytest.mark.parametrize("pooling, kind, office, receiver", PURCHASE_ROUTES)
def test_purchases_land_where_the_pooling_state_says(
    company, care, pooling, kind, office, receiver
):
    # given
    if pooling:
        pooling_set(company=company, enabled=True, actor=care, reason="on")
        company.refresh_from_db()
    before = balances(company)
    # when
    entry = buy(company, care, "25", office=office, kind=kind)
    # then: exactly one balance grew, the expected one
    account = Account.objects.select_related("office").get(pk=entry.account_id)
    assert (account.kind, account.office.slug if account.office else None) == receiver
    after = balances(company)
    changed = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    assert list(changed.values()) == [D("25")]
    assert (entry.entry_type, entry.amount, entry.balance_after) == (
        EntryType.PURCHASE,
        D("25"),
        D("25"),
    )
    assert_invariants(company)


def test_standard_purchase_while_pooling_is_off_needs_an_office(company, care):
    before = everything(company)
    with pytest.raises(ValidationFailed) as caught:
        buy(company, care, "25")
    assert caught.value.errors[0]["field"] == "office"
    assert everything(company) == before
