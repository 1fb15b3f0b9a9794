"""Reads of the money controls (SPEC §8) for the balance page, the settings page, the
banner and the API. Each takes a PortalScope: office admins see the controls of the
balances they may see (the pool, their wallets, the AI credits when they hold them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import OuterRef, Q, QuerySet, Subquery

from core.money import ZERO
from credits.allocation import cap_room
from credits.models import (
    Account,
    AccountKind,
    Alert,
    AlertKind,
    Allowance,
    CompanyControls,
    ControlChange,
    EntryType,
    LedgerEntry,
    PoolCap,
    RechargeRule,
)
from credits.periods import billing_period
from credits.routing import funds_usage
from offices.models import CreditKind
from offices.selectors import PortalScope


def controlled_accounts(scope: PortalScope) -> QuerySet[Account]:
    """The balances whose controls the scope may see, pool first."""
    kinds = [AccountKind.POOL]
    if scope.sees_ai_credits:
        kinds.append(AccountKind.AI_AGENT)
    wallets = Q(kind=AccountKind.WALLET)
    if not scope.is_company_admin:
        wallets &= Q(office_id__in=scope.office_ids)
    return (
        Account.objects.filter(Q(kind__in=kinds) | wallets, company=scope.company)
        .select_related("office")
        .order_by("kind", "office__name")
    )


def _concerning(scope: PortalScope) -> Q:
    """The alerts that concern the scope's user: those of the balances it may see, a
    pool-cap alert only for an office it may see (SPEC §8.3)."""
    cond = Q(account__in=controlled_accounts(scope).values("pk"))
    if not scope.is_company_admin:
        cond &= ~Q(kind=AlertKind.POOL_CAP) | Q(office_id__in=scope.office_ids)
    return cond


def open_alerts(scope: PortalScope) -> QuerySet[Alert]:
    """Open alerts that concern the scope, newest first."""
    return alerts_for(scope).filter(resolved_at__isnull=True)


def alerts_for(scope: PortalScope) -> QuerySet[Alert]:
    """Every alert (open and resolved) that concerns the scope, newest first."""
    return (
        Alert.objects.filter(_concerning(scope), company=scope.company)
        .select_related("account__office", "office")
        .order_by("-opened_at", "-id")
    )


@dataclass
class BalanceControl:
    account: Account
    active: bool  # funds usage under the current pooling state (else its rule sleeps)
    threshold: Decimal | None  # in force
    override: Decimal | None
    rule: RechargeRule | None
    recharges_this_period: int


@dataclass
class CapRow:
    office_id: int
    slug: str
    name: str
    cap: Decimal | None
    pool_drawn: Decimal
    room: Decimal | None


@dataclass
class MoneyControls:
    default_threshold: Decimal | None
    webhook_url: str  # empty unless configured (and only for company admins)
    balances: list[BalanceControl]
    caps: list[CapRow]
    alerts: list[Alert]
    recharges: list[LedgerEntry]
    changes: list[ControlChange] = field(default_factory=list)


def money_controls(scope: PortalScope, offices=None) -> MoneyControls:
    """Everything the balance page and the settings page show about the controls, in a
    handful of queries whatever the number of offices. `offices`: the visible offices'
    (pk, slug, name), when the caller has them already."""
    company = scope.company
    period = billing_period(company).start
    controls = CompanyControls.objects.filter(company=company).first()
    # Each account with its rule, if it has one (a reverse one-to-one: hasattr is False
    # when there is none).
    accounts = list(controlled_accounts(scope).select_related("recharge_rule"))
    rules = {a.pk: a.recharge_rule for a in accounts if hasattr(a, "recharge_rule")}
    recharges = list(
        LedgerEntry.objects.filter(
            account__in=accounts,
            entry_type=EntryType.AUTO_RECHARGE,
            # The period a recharge counts in is in its reference (charging.recharge_reference).
            reference__contains=f":{period:%Y-%m}:",
        )
        .select_related("account__office")
        .order_by("-created_at", "-id")
    )
    counts: dict[int, int] = {}
    for entry in recharges:
        counts[entry.account_id] = counts.get(entry.account_id, 0) + 1
    balances = [
        BalanceControl(
            account=a,
            active=funds_usage(a.kind, pooling=company.pooling_enabled),
            threshold=a.alert_threshold,
            override=a.threshold_override,
            rule=rules.get(a.pk),
            recharges_this_period=counts.get(a.pk, 0),
        )
        for a in accounts
    ]
    caps = dict(PoolCap.objects.filter(company=company).values_list("office_id", "cap"))
    rows = {
        office_id: (cap, drawn)
        for office_id, cap, drawn in Allowance.objects.filter(
            company=company, kind=CreditKind.STANDARD, period=period
        ).values_list("office_id", "pool_cap", "pool_drawn")
    }
    if offices is None:
        offices = scope.offices().values_list("pk", "slug", "name")
    cap_rows = []
    for pk, slug, name in sorted(offices, key=lambda o: o[2]):
        row_cap, drawn = rows.get(pk, (caps.get(pk), ZERO))
        cap_rows.append(
            CapRow(
                office_id=pk,
                slug=slug,
                name=name,
                cap=row_cap,
                pool_drawn=drawn,
                room=cap_room(row_cap, drawn),
            )
        )
    return MoneyControls(
        default_threshold=controls.alert_threshold if controls else None,
        webhook_url=(controls.webhook_url if controls and scope.is_company_admin else ""),
        balances=balances,
        caps=cap_rows,
        alerts=list(open_alerts(scope)),
        recharges=recharges,
        changes=(
            list(ControlChange.objects.filter(company=company).select_related("changed_by")[:20])
            if scope.is_company_admin
            else []
        ),
    )


# The balance page and the banner: a fixed, small number of queries ----------------------


@dataclass
class BannerAlert:
    account: Account
    kind: str  # low_balance | uncovered | pool_cap
    threshold: Decimal | None  # the warning threshold, or the office's pool cap
    since: object  # when it opened
    office: object = None  # a pool-cap alert's office
    period: object = None  # and period


@dataclass
class BalanceControls:
    """What the balance page shows of the controls (templates/credits/_controls_summary)."""

    rules: list[BalanceControl]
    caps: list[CapRow]
    alerts: list[BannerAlert]


def _open_since(kind: str):
    return Subquery(
        Alert.objects.filter(account=OuterRef("pk"), kind=kind, resolved_at__isnull=True)
        .order_by("-opened_at")
        .values("opened_at")[:1]
    )


def _banner(accounts, scope: PortalScope) -> list[BannerAlert]:
    out = []
    for a in accounts:
        if a.low_balance_alert:
            out.append(BannerAlert(a, AlertKind.LOW_BALANCE, a.alert_threshold, a.low_since))
        if a.uncovered_alert:
            out.append(BannerAlert(a, AlertKind.UNCOVERED, None, a.empty_since))
        if a.pool_cap_alerts:
            # Only when the pool says some are open: one more query, of those alone.
            capped = Alert.objects.filter(
                account=a, kind=AlertKind.POOL_CAP, resolved_at__isnull=True
            ).select_related("office")
            if not scope.is_company_admin:
                capped = capped.filter(office_id__in=scope.office_ids)
            out += [
                BannerAlert(a, AlertKind.POOL_CAP, c.threshold, c.opened_at, c.office, c.period)
                for c in capped
            ]
    return sorted(out, key=lambda b: (b.since is None, b.since), reverse=True)


# The accounts with an open alert of some kind (each says so).
ALERTED = Q(low_balance_alert=True) | Q(uncovered_alert=True) | Q(pool_cap_alerts__gt=0)


def _with_alerts(accounts: QuerySet[Account]) -> QuerySet[Account]:
    return accounts.annotate(
        low_since=_open_since(AlertKind.LOW_BALANCE), empty_since=_open_since(AlertKind.UNCOVERED)
    )


def banner_alerts(scope: PortalScope) -> list[BannerAlert]:
    """The open alerts of the balances the scope may see, newest first: one query (the
    accounts carry whether an alert of each kind is open)."""
    accounts = _with_alerts(controlled_accounts(scope).filter(ALERTED))
    return _banner(accounts, scope)


def balance_controls(scope: PortalScope, pool_drawn: dict[int, Decimal]) -> BalanceControls:
    """The rules, caps and open alerts of the balance page in two queries: the visible
    accounts that have a rule or an open alert (with the rule), and the visible offices'
    caps. `pool_drawn` (office pk → this period's pool draws) comes from the page's own
    allowance figures."""
    company = scope.company
    period = billing_period(company).start
    accounts = list(
        _with_alerts(
            controlled_accounts(scope)
            .filter(Q(recharge_rule__isnull=False) | ALERTED)
            .select_related("recharge_rule")
        )
    )
    rules = []
    for a in accounts:
        rule = getattr(a, "recharge_rule", None)
        if rule is not None:
            rules.append(
                BalanceControl(
                    account=a,
                    active=funds_usage(a.kind, pooling=company.pooling_enabled),
                    threshold=a.alert_threshold,
                    override=a.threshold_override,
                    rule=rule,
                    recharges_this_period=rule.recharges if rule.period == period else 0,
                )
            )
    caps = PoolCap.objects.filter(company=company).select_related("office").order_by("office__name")
    if not scope.is_company_admin:
        caps = caps.filter(office_id__in=scope.office_ids)
    cap_rows = []
    for cap in caps:
        drawn = pool_drawn.get(cap.office_id, ZERO)
        cap_rows.append(
            CapRow(
                office_id=cap.office_id,
                slug=cap.office.slug,
                name=cap.office.name,
                cap=cap.cap,
                pool_drawn=drawn,
                room=cap_room(cap.cap, drawn),
            )
        )
    return BalanceControls(rules=rules, caps=cap_rows, alerts=_banner(accounts, scope))
