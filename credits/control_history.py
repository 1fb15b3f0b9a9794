"""Money controls as they were at a past moment (SPEC §8, §9.2), read from their audit.

Every change of a pool cap or an auto-recharge rule is audited (`ControlChange`: the
setting, old value → new value, when). Read in order, the audit gives each setting's
history: before its first change a setting held that change's old value; afterwards the
latest change's new value; a setting never changed holds what it holds today.

A history is a list of (moment, value) steps, the first at None (since always):
`value_at(history, moment)` is the value in force for something done at `moment`. A
change applies to what is charged after it (§8.3), so a step at exactly `moment` is in
force: the change took the company row before the batch charged."""

from __future__ import annotations

import bisect
import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal

from credits.models import Account, ControlChange, PoolCap, RechargeRule
from offices.models import Company

Steps = list[tuple[dt.datetime | None, object]]


@dataclass(frozen=True)
class RuleTerms:
    """An auto-recharge rule's terms: below `threshold` add `amount`, `limit` a month."""

    threshold: Decimal
    amount: Decimal
    limit: int


RULE_TEXT = re.compile(r"below (?P<t>[\d.]+) add (?P<a>[\d.]+), at most (?P<n>\d+) a month")


def _rule_terms(text: str) -> RuleTerms | None:
    match = RULE_TEXT.fullmatch(text.strip()) if text else None
    if match is None:
        return None
    return RuleTerms(Decimal(match["t"]), Decimal(match["a"]), int(match["n"]))


def _cap(text: str) -> Decimal | None:
    return Decimal(text) if text else None


def _steps(company: Company, setting: str, today, parse) -> Steps:
    changes = list(
        ControlChange.objects.filter(company=company, setting=setting)
        .order_by("created_at", "id")
        .values_list("created_at", "old_value", "new_value")
    )
    if not changes:
        return [(None, today)]
    return [(None, parse(changes[0][1]))] + [(at, parse(new)) for at, _old, new in changes]


def value_at(steps: Steps, moment: dt.datetime):
    """The value of a history (see the module docstring) in force at `moment`."""
    moments = [at for at, _ in steps[1:]]
    return steps[bisect.bisect_right(moments, moment)][1]


def pool_cap_history(company: Company) -> dict[int, Steps]:
    """Office pk → the history of its pool cap (Decimal, or None: no cap). Offices whose
    cap was never set nor audited are left out (no cap, ever)."""
    today = dict(PoolCap.objects.filter(company=company).values_list("office_id", "cap"))
    histories = {}
    for office in company.offices.all():
        steps = _steps(company, f"Pool cap of {office.name}", today.get(office.pk), _cap)
        if any(value is not None for _, value in steps):
            histories[office.pk] = steps
    return histories


def recharge_rule_history(company: Company, account: Account) -> Steps:
    """The history of `account`'s auto-recharge rule (RuleTerms, or None: no rule)."""
    rule = RechargeRule.objects.filter(account=account).first()
    today = None if rule is None else RuleTerms(rule.threshold, rule.amount, rule.monthly_limit)
    return _steps(company, f"Auto-recharge of {account}", today, _rule_terms)
