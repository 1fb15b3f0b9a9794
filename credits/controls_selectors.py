"""Reads of the money controls (SPEC §8) for the balance page, the settings page, the
banner and the API. Each takes a PortalScope: office admins see the controls of the
balances they may see (the pool, their wallets, the AI credits when they hold them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Q, QuerySet

from core.money import ZERO
from credits.allocation import cap_room
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


def open_alerts(scope: PortalScope) -> QuerySet[Alert]:
    """Open alerts of the balances the scope may see, newest first (the banner)."""
    return (
        Alert.objects.filter(
            company=scope.company,
            resolved_at__isnull=True,
            account__in=controlled_accounts(scope).values("pk"),
        )
        .select_related("account__office")
        .order_by("-opened_at", "-id")
    )


def alerts_for(scope: PortalScope) -> QuerySet[Alert]:
    """Every alert (open and resolved) of the balances the scope may see, newest first."""
    return (
        Alert.objects.filter(
            company=scope.company, account__in=controlled_accounts(scope).values("pk")
        )
        .select_related("account__office")
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


def money_controls(scope: PortalScope) -> MoneyControls:
    """Everything the balance page and the settings page show about the controls, in a
    handful of queries whatever the number of offices."""
    company = scope.company
    period = billing_period(company).start
    controls = CompanyControls.objects.filter(company=company).first()
    accounts = list(controlled_accounts(scope))
    rules = {r.account_id: r for r in RechargeRule.objects.filter(account__in=accounts)}
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
    cap_rows = []
    for office in scope.offices().order_by("name"):
        row_cap, drawn = rows.get(office.pk, (caps.get(office.pk), ZERO))
        cap_rows.append(
            CapRow(
                office_id=office.pk,
                slug=office.slug,
                name=office.name,
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
