"""Purchases, grants and adjustments: validated amounts, memos, no negative balances,
idempotent submits. Every refusal writes nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.errors import InsufficientFunds, NotFound, ValidationFailed
from credits.models import Account, AccountKind, EntryType, LedgerEntry
from credits.services import (
    credits_add,
    credits_adjust,
    credits_grant,
    credits_purchase,
    pooling_set,
)
from offices.models import CreditKind
from tests.credits.checks import assert_invariants, balances
from tests.factories import company_factory

D = Decimal


@pytest.fixture
def austin(company):
    return company.offices.get(slug="austin")


def account(company, kind, slug=None) -> Account:
    if kind == AccountKind.WALLET:
        return Account.objects.get(company=company, kind=kind, office__slug=slug)
    return Account.objects.get(company=company, kind=kind)


def state(company) -> tuple:
    return balances(company), LedgerEntry.objects.count()


BAD_AMOUNTS = [
    pytest.param("0", id="zero"),
    pytest.param("0.0000", id="zero-with-places"),
    pytest.param("-5", id="negative"),
    pytest.param("NaN", id="nan"),
    pytest.param(float("nan"), id="float-nan"),
    pytest.param("Infinity", id="infinity"),
    pytest.param("-Infinity", id="minus-infinity"),
    pytest.param("1.00001", id="5-decimals"),
    pytest.param("0.00001", id="below-the-smallest-unit"),
    pytest.param("1000000.0001", id="over-the-maximum"),
    pytest.param("1E+30", id="huge"),
    pytest.param("abc", id="not-a-number"),
    pytest.param("", id="empty"),
    pytest.param(None, id="none"),
]


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
@pytest.mark.parametrize("service", [credits_purchase, credits_grant])
def test_bad_amounts_are_refused_and_write_nothing(company, care, austin, service, amount):
    before = state(company)
    with pytest.raises(ValidationFailed) as caught:
        service(company=company, amount=amount, office=austin, actor=care)
    assert caught.value.status_code == 422
    assert caught.value.errors[0]["field"] == "amount"
    assert caught.value.errors[0]["message"]
    assert state(company) == before


@pytest.mark.parametrize(
    "amount, credited",
    [
        ("0.0001", "0.0001"),
        ("1000000", "1000000"),
        (" 12.5 ", "12.5"),
        (7, "7"),
        (D("3.1400"), "3.14"),
    ],
)
def test_good_amounts_are_credited_exactly(company, care, austin, amount, credited):
    entry = credits_purchase(company=company, amount=amount, office=austin, actor=care)
    assert entry.amount == D(credited)
    assert account(company, AccountKind.WALLET, "austin").balance == D(credited)
    assert (entry.entry_type, entry.created_by) == (EntryType.PURCHASE, care)


def test_a_grant_is_recorded_as_a_grant_with_its_memo(company, care, austin):
    entry = credits_grant(company=company, amount="10", office=austin, actor=care, memo="Sorry")
    assert (entry.entry_type, entry.memo, entry.amount) == (EntryType.GRANT, "Sorry", D("10"))
    assert_invariants(company)


@pytest.mark.parametrize(
    "kwargs",
    [{"entry_type": EntryType.USAGE}, {"entry_type": EntryType.ADJUSTMENT}, {"kind": "gold"}],
)
def test_credits_add_only_adds_known_kinds_of_credit(company, care, austin, kwargs):
    before = state(company)
    with pytest.raises(ValidationFailed):
        credits_add(company=company, amount="5", office=austin, actor=care, **kwargs)
    assert state(company) == before


@pytest.mark.parametrize("pooling", [False, True])
@pytest.mark.parametrize("kind", [CreditKind.STANDARD, CreditKind.AI_AGENT])
def test_an_office_of_another_company_is_refused_whatever_the_pooling_state(
    company, care, pooling, kind
):
    other = company_factory(slug="globex", offices=("paris",))
    if pooling:
        pooling_set(company=company, enabled=True, actor=care, reason="test")
    before = state(company), state(other)
    with pytest.raises(NotFound):
        credits_purchase(
            company=company,
            amount="5",
            office=other.offices.get(slug="paris"),
            actor=care,
            kind=kind,
        )
    assert (state(company), state(other)) == before


# -- idempotency ------------------------------------------------------------------------------


def test_a_repeated_purchase_with_the_same_key_records_once(company, care, austin):
    first = credits_purchase(
        company=company, amount="40", office=austin, actor=care, idempotency_key="k-1"
    )
    again = credits_purchase(
        company=company, amount="40", office=austin, actor=care, idempotency_key="k-1"
    )
    assert again.pk == first.pk
    assert LedgerEntry.objects.filter(company=company).count() == 1
    assert account(company, AccountKind.WALLET, "austin").balance == D("40")
    # a different key is a different purchase
    credits_purchase(company=company, amount="40", office=austin, actor=care, idempotency_key="k-2")
    assert account(company, AccountKind.WALLET, "austin").balance == D("80")
    assert_invariants(company)


def test_a_repeated_key_never_adds_again_even_with_other_details(company, care, austin):
    first = credits_purchase(
        company=company, amount="40", office=austin, actor=care, idempotency_key="double"
    )
    again = credits_grant(company=company, amount="99", actor=care, idempotency_key="double",
                          kind=CreditKind.AI_AGENT)  # fmt: skip
    assert again.pk == first.pk
    assert balances(company)["ai"] == 0
    assert LedgerEntry.objects.count() == 1


def test_the_same_key_in_another_company_is_another_purchase(company, care, austin):
    other = company_factory(slug="globex")
    credits_purchase(company=company, amount="5", office=austin, actor=care, idempotency_key="k")
    entry = credits_purchase(
        company=other, amount="6", office=other.offices.get(slug="hq"), actor=care,
        idempotency_key="k",
    )  # fmt: skip
    assert entry.company_id == other.pk
    assert balances(other)[("wallet", "hq")] == D("6")


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"idempotency_key": "k" * 65}, "idempotency_key"),
        ({"idempotency_key": "k\x00"}, "idempotency_key"),
        ({"idempotency_key": 12}, "idempotency_key"),
        ({"memo": "thanks\x00"}, "memo"),
    ],
)
@pytest.mark.parametrize("service", [credits_purchase, credits_grant])
def test_keys_and_memos_the_database_cannot_store_are_refused(
    company, care, austin, service, kwargs, field
):
    # PostgreSQL would raise a DataError (a 500) on an over-long key or a NUL character.
    before = state(company)
    with pytest.raises(ValidationFailed) as caught:
        service(company=company, amount="5", office=austin, actor=care, **kwargs)
    assert caught.value.errors[0]["field"] == field
    assert state(company) == before


def test_a_key_of_the_maximum_length_is_accepted(company, care, austin):
    key = "k" * 64
    first = credits_purchase(
        company=company, amount="5", office=austin, actor=care, idempotency_key=key
    )
    again = credits_purchase(
        company=company, amount="5", office=austin, actor=care, idempotency_key=key
    )
    assert again.pk == first.pk
    assert account(company, AccountKind.WALLET, "austin").balance == D("5")


def test_purchases_without_a_key_are_never_merged(company, care, austin):
    for _ in range(3):
        credits_purchase(company=company, amount="5", office=austin, actor=care)
    assert account(company, AccountKind.WALLET, "austin").balance == D("15")
    assert LedgerEntry.objects.count() == 3


# -- adjustments ------------------------------------------------------------------------------


@pytest.mark.parametrize("memo", ["", "   ", None, "fix\x00", 7])
def test_an_adjustment_needs_a_memo(company, care, austin, memo):
    credits_purchase(company=company, amount="10", office=austin, actor=care)
    before = state(company)
    with pytest.raises(ValidationFailed) as caught:
        credits_adjust(
            account=account(company, AccountKind.WALLET, "austin"),
            amount="-1",
            memo=memo,
            actor=care,
        )
    assert caught.value.errors[0]["field"] == "memo"
    assert state(company) == before


@pytest.mark.parametrize(
    "amount", ["0", "NaN", "1.00001", "-1000000.0001", "1000001", "x", float("inf")]
)
def test_an_adjustment_amount_is_validated(company, care, austin, amount):
    credits_purchase(company=company, amount="10", office=austin, actor=care)
    before = state(company)
    with pytest.raises(ValidationFailed) as caught:
        credits_adjust(
            account=account(company, AccountKind.WALLET, "austin"),
            amount=amount,
            memo="fix",
            actor=care,
        )
    assert caught.value.errors[0]["field"] == "amount"
    assert state(company) == before


@pytest.mark.parametrize(
    "amount, after",
    [("-10", "0"), ("-2.5", "7.5"), ("0.0001", "10.0001"), ("+3", "13")],
)
def test_an_adjustment_corrects_the_balance_with_a_ledger_entry(
    company, care, austin, amount, after
):
    credits_purchase(company=company, amount="10", office=austin, actor=care)
    entry = credits_adjust(
        account=account(company, AccountKind.WALLET, "austin"),
        amount=amount,
        memo="  Refund of a dropped call  ",
        actor=care,
    )
    assert account(company, AccountKind.WALLET, "austin").balance == D(after)
    assert (entry.entry_type, entry.amount, entry.balance_after, entry.memo, entry.created_by) == (
        EntryType.ADJUSTMENT,
        D(amount),
        D(after),
        "Refund of a dropped call",
        care,
    )
    assert_invariants(company)


@pytest.mark.parametrize(
    "kind, slug, pooling",
    [
        (AccountKind.WALLET, "austin", False),
        (AccountKind.POOL, None, True),
        (AccountKind.AI_AGENT, None, False),
        (AccountKind.AI_AGENT, None, True),
    ],
)
def test_an_adjustment_never_takes_a_balance_below_zero(company, care, kind, slug, pooling):
    # given: 10 credits in the account
    if pooling:
        pooling_set(company=company, enabled=True, actor=care, reason="on")
        company.refresh_from_db()
    credit_kind = CreditKind.AI_AGENT if kind == AccountKind.AI_AGENT else CreditKind.STANDARD
    office = company.offices.get(slug=slug) if slug else None
    credits_purchase(company=company, amount="10", office=office, kind=credit_kind, actor=care)
    before = state(company)
    # when / then
    with pytest.raises(InsufficientFunds) as caught:
        credits_adjust(
            account=account(company, kind, slug), amount="-10.0001", memo="x", actor=care
        )
    assert caught.value.status_code == 409
    assert state(company) == before


def test_an_adjustment_uses_the_current_balance_not_a_stale_object(company, care, austin):
    # given: an Account object read when the wallet held 10, then 5 more were spent via usage
    credits_purchase(company=company, amount="10", office=austin, actor=care)
    stale = account(company, AccountKind.WALLET, "austin")
    credits_adjust(account=account(company, AccountKind.WALLET, "austin"), amount="-5", memo="a",
                   actor=care)  # fmt: skip
    # when / then: taking 10 through the stale object is refused
    with pytest.raises(InsufficientFunds):
        credits_adjust(account=stale, amount="-10", memo="b", actor=care)
    assert account(company, AccountKind.WALLET, "austin").balance == D("5")


def test_a_wallet_cannot_be_adjusted_while_pooling_is_on(company, care, austin):
    credits_purchase(company=company, amount="10", office=austin, actor=care)
    pooling_set(company=company, enabled=True, actor=care, reason="on")
    before = state(company)
    for amount in ("5", "-5"):
        with pytest.raises(ValidationFailed):
            credits_adjust(
                account=account(company, AccountKind.WALLET, "austin"),
                amount=amount,
                memo="nope",
                actor=care,
            )
    assert state(company) == before
    assert_invariants(company)


def test_the_pool_cannot_be_adjusted_while_pooling_is_off(company, care):
    before = state(company)
    with pytest.raises(ValidationFailed):
        credits_adjust(account=account(company, AccountKind.POOL), amount="5", memo="x", actor=care)
    assert state(company) == before
