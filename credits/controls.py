"""Money controls (SPEC §8): auto-recharge rules, low-balance thresholds, the alert
webhook and per-office pool caps. Every write is a service here, audited (who, when,
old value → new value) and taken under the documented lock order (company → accounts
in pk order → allowances)."""

from __future__ import annotations

import ipaddress
import secrets
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction

from core.db import retry_on_conflict
from core.errors import NotFound, ValidationFailed
from core.money import q
from credits.accounts import accounts_ensure
from credits.alerts import pool_cap_alerts_resolve, thresholds_refresh
from credits.allocation import cap_room
from credits.models import (
    Account,
    Allowance,
    CompanyControls,
    ControlChange,
    PoolCap,
    RechargeRule,
)
from offices.locks import lock_company
from offices.models import Company, CreditKind, Office

FOUR_PLACES = Decimal("0.0001")


def _invalid(field: str, problem: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {problem}", [{"field": field, "message": problem}])


# A threshold or cap beyond any balance this portal keeps (the column holds 14 digits).
CONTROL_MAX = Decimal("1000000000000")


def parse_control_amount(
    value, *, field: str, allow_zero: bool = False, maximum: Decimal | None = None
) -> Decimal:
    """A threshold, amount or cap: a finite number of credits, not negative (nor zero
    unless `allow_zero`), with at most 4 decimals, at most `maximum` (CONTROL_MAX)."""
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError, TypeError):
        raise _invalid(field, "Enter a number.") from None
    limit = CONTROL_MAX if maximum is None else maximum
    if not amount.is_finite():
        raise _invalid(field, "Enter a finite number.")
    if amount < 0 or (amount == 0 and not allow_zero):
        raise _invalid(field, "Must be zero or more." if allow_zero else "Must be more than zero.")
    if amount > limit:  # first: quantizing a huge number fails
        raise _invalid(field, f"At most {limit:,} credits.")
    if amount != amount.quantize(FOUR_PLACES):
        raise _invalid(field, "At most 4 decimal places.")
    return q(amount)


def parse_monthly_limit(value) -> int:
    """Recharges per period: a whole number from 1 to RECHARGE_MONTHLY_LIMIT_MAX."""
    top = settings.RECHARGE_MONTHLY_LIMIT_MAX
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError, TypeError):
        raise _invalid("monthly_limit", "Enter a whole number.") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise _invalid("monthly_limit", "Enter a whole number.")
    if not 1 <= number <= top:
        raise _invalid("monthly_limit", f"Between 1 and {top} recharges a month.")
    return int(number)


def _audit(*, company: Company, setting: str, old, new, actor) -> None:
    if str(old if old is not None else "") == str(new if new is not None else ""):
        return
    ControlChange.objects.create(
        company=company,
        setting=setting,
        old_value="" if old is None else str(old),
        new_value="" if new is None else str(new),
        changed_by=actor,
    )


def _label(account: Account) -> str:
    return str(account)


def _company_account(company: Company, account: Account | int) -> Account:
    """The company's account (locked, after the company row), or NotFound."""
    pk = account.pk if isinstance(account, Account) else account
    locked = list(Account.objects.select_for_update().filter(company=company, pk=pk))
    if not locked:
        raise NotFound("No such balance.")
    return locked[0]


def controls_of(company: Company) -> CompanyControls:
    """The company's controls row (created empty on first use)."""
    controls, _ = CompanyControls.objects.get_or_create(company=company)
    return controls


@retry_on_conflict(retry_integrity=True)
@transaction.atomic
def alert_threshold_set(
    *, company: Company, value, actor, account: Account | int | None = None
) -> None:
    """Set the company's default low-balance threshold (`account` None) or one balance's
    override; None clears it. Alerts open or resolve at once to match (SPEC §8.2)."""
    value = None if value in (None, "") else parse_control_amount(value, field="threshold")
    company = lock_company(company.pk, exclusive=False)
    accounts_ensure(company=company)
    if account is None:
        controls = CompanyControls.objects.select_for_update().get_or_create(company=company)[0]
        old = controls.alert_threshold
        controls.alert_threshold = value
        controls.save(update_fields=["alert_threshold", "updated_at"])
        accounts = list(Account.objects.select_for_update().filter(company=company).order_by("pk"))
        _audit(
            company=company,
            setting="Default low-balance threshold",
            old=old,
            new=value,
            actor=actor,
        )
    else:
        locked = _company_account(company, account)
        old = locked.threshold_override
        locked.threshold_override = value
        Account.objects.filter(pk=locked.pk).update(threshold_override=value)
        accounts = [locked]
        _audit(
            company=company,
            setting=f"Low-balance threshold of {_label(locked)}",
            old=old,
            new=value,
            actor=actor,
        )
    thresholds_refresh(company=company, accounts=accounts, pooling=company.pooling_enabled)


@retry_on_conflict(retry_integrity=True)
@transaction.atomic
def recharge_rule_set(
    *, company: Company, account: Account | int, threshold, amount, monthly_limit=3, actor
) -> RechargeRule:
    """Create or change the auto-recharge rule of one of the company's balances: below
    `threshold` before a draw, add `amount` (at most the purchase maximum), at most
    `monthly_limit` times a period (SPEC §8.1)."""
    threshold = parse_control_amount(threshold, field="threshold")
    # A recharge is a purchase agreed in advance: within what one purchase may be.
    amount = parse_control_amount(
        amount, field="amount", maximum=Decimal(settings.CREDITS_PURCHASE_MAX)
    )
    monthly_limit = parse_monthly_limit(monthly_limit)
    company = lock_company(company.pk, exclusive=False)
    locked = _company_account(company, account)
    rule = RechargeRule.objects.filter(account=locked).first()
    old = None if rule is None else _rule_text(rule)
    if rule is None:
        rule = RechargeRule(company=company, account=locked)
    rule.threshold, rule.amount, rule.monthly_limit = threshold, amount, monthly_limit
    # Recharges made this period still count: past a lowered limit, none until the next.
    rule.save()
    if not locked.has_recharge_rule:
        Account.objects.filter(pk=locked.pk).update(has_recharge_rule=True)
    _audit(
        company=company,
        setting=f"Auto-recharge of {_label(locked)}",
        old=old,
        new=_rule_text(rule),
        actor=actor,
    )
    return rule


@retry_on_conflict()
@transaction.atomic
def recharge_rule_delete(*, company: Company, rule: RechargeRule | int, actor) -> None:
    """Remove an auto-recharge rule; its past recharges stay in the ledger."""
    pk = rule.pk if isinstance(rule, RechargeRule) else rule
    company = lock_company(company.pk, exclusive=False)
    found = RechargeRule.objects.filter(company=company, pk=pk).first()
    if found is None:
        raise NotFound("No such auto-recharge rule.")
    locked = _company_account(company, found.account_id)
    _audit(
        company=company,
        setting=f"Auto-recharge of {_label(locked)}",
        old=_rule_text(found),
        new=None,
        actor=actor,
    )
    RechargeRule.objects.filter(pk=found.pk).delete()
    Account.objects.filter(pk=locked.pk).update(has_recharge_rule=False)


def _rule_text(rule: RechargeRule) -> str:
    return f"below {rule.threshold} add {rule.amount}, at most {rule.monthly_limit} a month"


@retry_on_conflict(retry_integrity=True)
@transaction.atomic
def pool_cap_set(*, company: Company, office: Office | int, cap, actor) -> PoolCap | None:
    """Cap what `office` may draw from the pool per period (None removes the cap). It
    applies to the events charged after it, whatever period they fall in (SPEC §8.3):
    the company row is taken exclusively, so no batch is charging meanwhile."""
    cap = None if cap in (None, "") else parse_control_amount(cap, field="cap", allow_zero=True)
    pk = office.pk if isinstance(office, Office) else office
    company = lock_company(company.pk, exclusive=True)
    found = Office.objects.filter(company=company, pk=pk).first()
    if found is None:
        raise NotFound("No such office.")
    current = PoolCap.objects.filter(office=found).first()
    old = None if current is None else current.cap
    if cap is None:
        if current is not None:
            current.delete()
        result = None
    else:
        result, _ = PoolCap.objects.update_or_create(
            office=found, defaults={"company": company, "cap": cap}
        )
    rows = list(
        Allowance.objects.select_for_update()
        .filter(office=found, kind=CreditKind.STANDARD)
        .order_by("pk")
    )
    for row in rows:
        Allowance.objects.filter(pk=row.pk).update(pool_cap=cap, pool_drawn_at_cap=row.pool_drawn)
    # An office with room again is no longer capped out: its pool-cap alerts resolve.
    roomy = [r for r in rows if r.pool_cap_alert and (cap is None or cap_room(cap, r.pool_drawn))]
    if roomy:
        pool_cap_alerts_resolve(company_id=company.pk, allowances=roomy)
    _audit(company=company, setting=f"Pool cap of {found.name}", old=old, new=cap, actor=actor)
    return result


# The one exception to "HTTPS to a public address": a receiver on this machine while
# DEBUG is on (the demo and the webhook test).
WEBHOOK_LOCAL_HOSTS = ("localhost", "127.0.0.1")


def webhook_local_allowed(scheme: str, hostname: str) -> bool:
    """Whether the URL is the DEBUG exception: http(s) to localhost / 127.0.0.1."""
    return settings.DEBUG and scheme in ("http", "https") and hostname in WEBHOOK_LOCAL_HOSTS


def address_refusal(address: str, *, allow_loopback: bool = False) -> str | None:
    """Why alerts may not be posted to the IP `address` (private, loopback, link-local,
    reserved, multicast or otherwise not public: the portal's own network, SSRF), or
    None when it is a public address. An IPv4 address mapped into IPv6 counts as itself."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone names no address
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return None if allow_loopback else "a loopback address"
    checks = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "not a public address"),
    )
    return next((reason for refused, reason in checks if refused), None)


def webhook_url_check(url: str) -> str:
    """The webhook URL, stripped, if alerts may be posted to it; else ValidationFailed.
    A name is resolved only when posting (credits.notifications checks every address it
    resolves to then); an IP address is checked here too."""
    url = (url or "").strip()
    if len(url) > 500:
        raise _invalid("webhook_url", "At most 500 characters.")
    parts = urlsplit(url)
    if not parts.hostname:
        raise _invalid("webhook_url", "Enter a full URL, such as https://example.com/hook.")
    local = webhook_local_allowed(parts.scheme, parts.hostname)
    if not (parts.scheme == "https" or (parts.scheme == "http" and local)):
        raise _invalid("webhook_url", "The webhook must use HTTPS.")
    try:
        ipaddress.ip_address(parts.hostname)
    except ValueError:
        return url
    if address_refusal(parts.hostname, allow_loopback=local):
        raise _invalid("webhook_url", "The webhook must be a public address.")
    return url


@retry_on_conflict(retry_integrity=True)
@transaction.atomic
def webhook_set(*, company: Company, url: str, actor) -> str:
    """Point alert notifications at an HTTPS URL (http://127.0.0.1 or localhost only with
    DEBUG) and return a new signing secret; it is stored to sign, and shown only now."""
    url = webhook_url_check(url)
    company = lock_company(company.pk, exclusive=False)
    controls = CompanyControls.objects.select_for_update().get_or_create(company=company)[0]
    old = controls.webhook_url
    controls.webhook_url = url
    controls.webhook_secret = secrets.token_urlsafe(32)
    controls.save(update_fields=["webhook_url", "webhook_secret", "updated_at"])
    _audit(company=company, setting="Alert webhook", old=old, new=url, actor=actor)
    _audit(
        company=company,
        setting="Alert webhook secret",
        old="(previous)" if old else "",
        new="(new secret)",
        actor=actor,
    )
    return controls.webhook_secret


@retry_on_conflict()
@transaction.atomic
def webhook_clear(*, company: Company, actor) -> None:
    """Stop posting alerts to the webhook and forget its secret."""
    company = lock_company(company.pk, exclusive=False)
    controls = CompanyControls.objects.select_for_update().get_or_create(company=company)[0]
    old = controls.webhook_url
    controls.webhook_url = controls.webhook_secret = ""
    controls.save(update_fields=["webhook_url", "webhook_secret", "updated_at"])
    _audit(company=company, setting="Alert webhook", old=old, new="", actor=actor)
