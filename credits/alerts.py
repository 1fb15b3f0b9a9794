"""Low-balance alerts (SPEC §8.2, invariant 11), kept in step with the balances, and
pool-cap alerts (§8.3, below).

The ledger calls `alerts_sync` after every balance change (credits.ledger.post and
post_sql): an alert opens when a balance is below the threshold in force and none is
open, and resolves when it is not. It reads nothing: each account row carries its
threshold in force and whether an alert is open, so a change that crosses nothing costs
a comparison. Notifications are queued only after the transaction commits."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from credits.models import Account, AccountKind, Alert, AlertKind, Allowance, CompanyControls
from credits.routing import funds_usage


def _notify_after_commit(alert: Alert) -> None:
    def enqueue():
        from credits.notifications import alert_notify  # the task module imports mail, HTTP

        alert_notify.enqueue(alert.pk)

    transaction.on_commit(enqueue)


def _open(account: Account, kind: str, now) -> Alert:
    alert = Alert.objects.create(
        company_id=account.company_id,
        account=account,
        kind=kind,
        threshold=account.alert_threshold if kind == AlertKind.LOW_BALANCE else None,
        balance=account.balance,
        opened_at=now,
    )
    _notify_after_commit(alert)
    return alert


def _resolve(account: Account, kind: str, now) -> None:
    Alert.objects.filter(account=account, kind=kind, resolved_at__isnull=True).update(
        resolved_at=now, resolved_balance=account.balance
    )


def alerts_sync(accounts: Iterable[Account]) -> None:
    """Open or resolve the alerts of `accounts` (locked by the caller, balances already
    changed in memory) to match their balances: low while below the threshold in force;
    an uncovered-usage alert resolves once the balance holds credits again."""
    now = None
    for account in accounts:
        low = account.alert_threshold is not None and account.balance < account.alert_threshold
        refilled = account.uncovered_alert and account.balance > 0
        if low == account.low_balance_alert and not refilled:
            continue
        now = now or timezone.now()
        if low != account.low_balance_alert:
            if low:
                _open(account, AlertKind.LOW_BALANCE, now)
            else:
                _resolve(account, AlertKind.LOW_BALANCE, now)
            account.low_balance_alert = low
        if refilled:
            _resolve(account, AlertKind.UNCOVERED, now)
            account.uncovered_alert = False
        Account.objects.filter(pk=account.pk).update(
            low_balance_alert=account.low_balance_alert, uncovered_alert=account.uncovered_alert
        )


def alerts_open_uncovered(accounts: Iterable[Account]) -> None:
    """Usage went uncovered because each of `accounts` (locked) is empty: open its
    uncovered-usage alert unless one is open."""
    now = timezone.now()
    for account in accounts:
        if account.uncovered_alert or account.balance > 0:
            continue
        _open(account, AlertKind.UNCOVERED, now)
        account.uncovered_alert = True
        Account.objects.filter(pk=account.pk).update(uncovered_alert=True)


def thresholds_refresh(
    *, company, accounts: Iterable[Account], pooling: bool, sync: bool = True
) -> None:
    """Recompute the threshold in force of `accounts` (locked, of `company`): the
    balance's override, else the company default; none while the balance funds nothing
    (wallets while pooling is on, the pool while it is off). Then sync their alerts.
    An idle balance's uncovered-usage alert resolves too. With `sync` False the caller
    is about to post to them and syncs after (so a transfer opens no passing alert)."""
    default = (
        CompanyControls.objects.filter(company=company)
        .values_list("alert_threshold", flat=True)
        .first()
    )
    now = timezone.now()
    accounts = list(accounts)
    for account in accounts:
        in_force = None
        if funds_usage(account.kind, pooling=pooling):
            in_force = (
                account.threshold_override if account.threshold_override is not None else default
            )
        if in_force != account.alert_threshold:
            account.alert_threshold = in_force
            Account.objects.filter(pk=account.pk).update(alert_threshold=in_force)
        if account.uncovered_alert and not funds_usage(account.kind, pooling=pooling):
            _resolve(account, AlertKind.UNCOVERED, now)
            account.uncovered_alert = False
            Account.objects.filter(pk=account.pk).update(uncovered_alert=False)
    if sync:
        alerts_sync(accounts)


# Pool caps (SPEC §8.3) ------------------------------------------------------------------
#
# A pool-cap alert is one per office and period: it opens when the office's cap left some
# of an event's cost uncovered while the pool still held credits (an empty pool is the
# uncovered-usage alert's), in the charging transaction; the office's allowance row of
# that period says it is open (`pool_cap_alert`), so a further capped event reads nothing.
# It resolves when the cap gives the office room again (raised or removed), when pooling
# goes off, or when its period is over: a batch drew on the pool for a later period (the
# pool's `latest_period`). A capped event of a period already over opens none.


def pool_cap_alerts_open(pool: Account, allowances: Iterable) -> None:
    """The pool cap of each of `allowances` (standard rows, locked, each capped out by
    this batch while `pool`, locked, still held credits) left usage uncovered: open its
    office's alert of that period unless one is open or the period is over."""
    now = timezone.now()
    opened = []
    for row in allowances:
        if row.pool_cap_alert or (pool.latest_period and row.period < pool.latest_period):
            continue
        alert = Alert.objects.create(
            company_id=pool.company_id,
            account=pool,
            kind=AlertKind.POOL_CAP,
            office_id=row.office_id,
            period=row.period,
            threshold=row.pool_cap,
            balance=pool.balance,
            opened_at=now,
        )
        _notify_after_commit(alert)
        row.pool_cap_alert = True
        opened.append(row.pk)
    if opened:
        Allowance.objects.filter(pk__in=opened).update(pool_cap_alert=True)
        pool.pool_cap_alerts += len(opened)
        Account.objects.filter(pk=pool.pk).update(pool_cap_alerts=pool.pool_cap_alerts)


def pool_period_advance(pool: Account, period) -> None:
    """A batch drew on `pool` (locked) for `period`, later than any before: the pool-cap
    alerts of earlier periods resolve (their period is over)."""
    pool.latest_period = period
    resolved = 0
    if pool.pool_cap_alerts:
        resolved = Alert.objects.filter(
            account=pool, kind=AlertKind.POOL_CAP, period__lt=period, resolved_at__isnull=True
        ).update(resolved_at=timezone.now(), resolved_balance=pool.balance)
    pool.pool_cap_alerts -= resolved
    Account.objects.filter(pk=pool.pk).update(
        latest_period=period, pool_cap_alerts=pool.pool_cap_alerts
    )


def pool_cap_alerts_resolve(*, company_id: int, allowances: Iterable | None = None) -> None:
    """The cap of each of `allowances` (standard rows, locked by the caller under the
    company's exclusive lock) gives its office room again, or pooling went off (None:
    every row of the company): resolve their open pool-cap alerts and clear the flags."""
    rows = Allowance.objects.filter(company_id=company_id, pool_cap_alert=True)
    alerts = Alert.objects.filter(
        company_id=company_id, kind=AlertKind.POOL_CAP, resolved_at__isnull=True
    )
    if allowances is not None:
        pks = [a.pk for a in allowances]
        if not pks:
            return
        rows = rows.filter(pk__in=pks)
        keys = Q()
        for a in allowances:
            keys |= Q(office_id=a.office_id, period=a.period)
        alerts = alerts.filter(keys)
    if not rows.update(pool_cap_alert=False):
        return
    pool = Account.objects.filter(company_id=company_id, kind=AccountKind.POOL).first()
    resolved = alerts.update(
        resolved_at=timezone.now(), resolved_balance=pool.balance if pool else None
    )
    if resolved and pool is not None:
        Account.objects.filter(pk=pool.pk).update(pool_cap_alerts=F("pool_cap_alerts") - resolved)
