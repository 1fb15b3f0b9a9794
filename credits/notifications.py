"""Alert notifications (SPEC §8.2): e-mail and the company's webhook, run by the task
queue's worker (django-tasks, database backend: `manage.py db_worker`) after the
transaction that opened the alert has committed (credits.alerts queues them).

A webhook call is an HTTPS POST of a JSON body, signed with HMAC-SHA256 over
"<timestamp>.<body>" with the company's secret (headers X-UCP-Timestamp and
X-UCP-Signature: sha256=<hex>). A failure is retried with exponential backoff up to
WEBHOOK_MAX_ATTEMPTS tries; every try is recorded (WebhookAttempt). Delivery is at
least once: the receiver de-duplicates by the alert id (X-UCP-Alert-Id)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request

from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone
from django_tasks import task

from credits.models import (
    AccountKind,
    Alert,
    AlertKind,
    CompanyControls,
    DeliveryStatus,
    WebhookAttempt,
)
from offices.models import Membership

USER_AGENT = "unified-credit-pooling-alerts/1"


def alert_payload(alert: Alert) -> dict:
    """The JSON body of an alert's webhook call (and what the API lists)."""
    account = alert.account
    return {
        "id": alert.pk,
        "event": f"alert.{alert.kind}",
        "company": alert.company.slug,
        "balance": {
            "kind": account.kind,
            "office": account.office.slug if account.office_id else None,
            "label": str(account),
        },
        "threshold": None if alert.threshold is None else f"{alert.threshold:.4f}",
        "balance_at_open": f"{alert.balance:.4f}",
        "opened_at": alert.opened_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
    }


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 of "<timestamp>.<body>" with the company's webhook secret, in hex."""
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _recipients(alert: Alert) -> list[str]:
    """The company admins, and for an office wallet that office's admins too."""
    members = Membership.objects.filter(company_id=alert.company_id, role="company_admin")
    if alert.account.kind == AccountKind.WALLET:
        members = Membership.objects.filter(company_id=alert.company_id).filter(
            role="company_admin"
        ) | Membership.objects.filter(
            company_id=alert.company_id, role="office_admin", office_id=alert.account.office_id
        )
    emails = members.exclude(user__email="").values_list("user__email", flat=True)
    return sorted(set(emails))


def _load(alert_id: int) -> Alert | None:
    return Alert.objects.select_related("company", "account__office").filter(pk=alert_id).first()


@task()
def alert_notify(alert_id: int) -> None:
    """E-mail the people an opened alert concerns, then queue its webhook call."""
    alert = _load(alert_id)
    if alert is None:
        return
    account = alert.account
    if alert.kind == AlertKind.LOW_BALANCE:
        subject = f"Low balance: {account} is below {alert.threshold:,.2f} credits"
        detail = (
            f"{account} holds {alert.balance:,.4f} credits, below its warning threshold of "
            f"{alert.threshold:,.4f}."
        )
    else:
        subject = f"Usage uncovered: {account} is empty"
        detail = f"{account} is empty, so usage it should pay for went uncovered."
    recipients = _recipients(alert)
    if recipients:
        send_mail(
            subject,
            f"{detail}\n\nAdd credits or set an auto-recharge rule in the portal "
            "(Balance → Money controls).\n\n"
            f"Alert #{alert.pk}, opened {alert.opened_at:%Y-%m-%d %H:%M} UTC.",
            settings.DEFAULT_FROM_EMAIL,
            recipients,
        )
    if CompanyControls.objects.filter(company_id=alert.company_id).exclude(webhook_url="").exists():
        webhook_deliver.enqueue(alert.pk, 1)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook answer that redirects is an answer, not a new address to post to."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def _post(url: str, body: bytes, headers: dict) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        # Reviewed: the URL was checked to be HTTPS (or loopback under DEBUG) when set
        # and again before each try (credits.controls.webhook_url_check).
        with _opener.open(request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as response:  # nosec B310
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@task()
def webhook_deliver(alert_id: int, attempt: int) -> None:
    """Try once to post the alert to the company's webhook; record the try, and on
    failure queue the next one after 2^(attempt-1) × WEBHOOK_BACKOFF_SECONDS."""
    from credits.controls import webhook_url_check

    alert = _load(alert_id)
    controls = CompanyControls.objects.filter(company_id=getattr(alert, "company_id", None)).first()
    if alert is None or controls is None or not controls.webhook_url:
        return
    url = controls.webhook_url
    body = json.dumps(alert_payload(alert), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-UCP-Alert-Id": str(alert.pk),
        "X-UCP-Timestamp": timestamp,
        "X-UCP-Signature": f"sha256={signature(controls.webhook_secret, timestamp, body)}",
    }
    code, error = None, ""
    try:
        webhook_url_check(url)
        code = _post(url, body, headers)
    except Exception as exc:  # noqa: BLE001 - any failure of the call is a failed try
        error = f"{type(exc).__name__}: {exc}"[:1000]
    delivered = code is not None and 200 <= code < 300
    if not delivered and not error:
        error = f"HTTP {code}"
    next_try = None
    if not delivered and attempt < settings.WEBHOOK_MAX_ATTEMPTS:
        delay = settings.WEBHOOK_BACKOFF_SECONDS * 2 ** (attempt - 1)
        next_try = timezone.now() + dt.timedelta(seconds=delay)
    WebhookAttempt.objects.create(
        alert=alert,
        company_id=alert.company_id,
        attempt=attempt,
        url=url,
        status=DeliveryStatus.DELIVERED if delivered else DeliveryStatus.FAILED,
        response_code=code,
        error=error,
        next_try_at=next_try,
    )
    if next_try is not None:
        webhook_deliver.using(run_after=next_try).enqueue(alert.pk, attempt + 1)
