"""Low-balance alerts (SPEC §8.2, invariant 11), kept in step with the balances.

The ledger calls `alerts_sync` after every balance change (credits.ledger.post and
post_sql): an alert opens when a balance is below the threshold in force and none is
open, and resolves when it is not. It reads nothing: each account row carries its
threshold in force and whether an alert is open, so a change that crosses nothing costs
a comparison. Notifications are queued only after the transaction commits."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from credits.models import Account, Alert, AlertKind, CompanyControls
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
