"""Alert notifications (SPEC §8.2): e-mail and the company's webhook, run by the task
queue's worker (django-tasks, database backend: `manage.py db_worker`) after the
transaction that opened the alert has committed (credits.alerts queues them).

A webhook call is an HTTPS POST of a JSON body, signed with HMAC-SHA256 over
"<timestamp>.<body>" with the company's secret (headers X-UCP-Timestamp and
X-UCP-Signature: sha256=<hex>). A failure is retried with exponential backoff up to
WEBHOOK_MAX_ATTEMPTS tries; every try is recorded (WebhookAttempt). Delivery is at
least once: the receiver de-duplicates by the alert id (X-UCP-Alert-Id).

Before each try the webhook's host name is resolved and every address it resolves to is
checked: a private, loopback, link-local, reserved or multicast one (the portal's own
network) refuses the try, recorded with the reason and not retried. The connection then
goes to a checked address, with the name in the Host header and TLS SNI (and the
certificate checked against the name), so a DNS answer that changes between the check
and the connection (a rebind) cannot point it elsewhere. http://127.0.0.1 and localhost
are posted to only while DEBUG is on (credits.controls.webhook_url_check)."""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import http.client
import json
import socket
import ssl
import time
from urllib.parse import urlsplit

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
        # A pool-cap alert (SPEC §8.3): whose cap, for which period; the cap is the threshold.
        "office": alert.office.slug if alert.office_id else None,
        "period": f"{alert.period:%Y-%m}" if alert.period else None,
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
    """The company admins, and for an office wallet or an office's pool cap that office's
    admins too."""
    members = Membership.objects.filter(company_id=alert.company_id, role="company_admin")
    office_id = alert.office_id if alert.kind == AlertKind.POOL_CAP else None
    if alert.account.kind == AccountKind.WALLET:
        office_id = alert.account.office_id
    if office_id is not None:
        members = members | Membership.objects.filter(
            company_id=alert.company_id, role="office_admin", office_id=office_id
        )
    emails = members.exclude(user__email="").values_list("user__email", flat=True)
    return sorted(set(emails))


def _load(alert_id: int) -> Alert | None:
    return (
        Alert.objects.select_related("company", "account__office", "office")
        .filter(pk=alert_id)
        .first()
    )


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
    elif alert.kind == AlertKind.POOL_CAP:
        subject = f"Pool cap reached: {alert.office.name} in {alert.period:%B %Y}"
        detail = (
            f"{alert.office.name} has drawn its pool cap of {alert.threshold:,.4f} credits for "
            f"{alert.period:%B %Y}, so its further usage goes uncovered although the pool "
            f"holds {alert.balance:,.4f} credits."
        )
    else:
        subject = f"Usage uncovered: {account} is empty"
        detail = f"{account} is empty, so usage it should pay for went uncovered."
    recipients = _recipients(alert)
    if recipients:
        send_mail(
            subject,
            f"{detail}\n\n{_advice(alert)}\n\n"
            f"Alert #{alert.pk}, opened {alert.opened_at:%Y-%m-%d %H:%M} UTC.",
            settings.DEFAULT_FROM_EMAIL,
            recipients,
        )
    if CompanyControls.objects.filter(company_id=alert.company_id).exclude(webhook_url="").exists():
        webhook_deliver.enqueue(alert.pk, 1)


def _advice(alert: Alert) -> str:
    if alert.kind == AlertKind.POOL_CAP:
        return (
            "A company admin can raise or remove the cap in the portal (Balance → Money controls)."
        )
    return "Add credits or set an auto-recharge rule in the portal (Balance → Money controls)."


class WebhookRefused(Exception):
    """The webhook's host resolves to an address alerts may not be posted to."""


# The resolver (tests swap in their own): getaddrinfo's answers, as the socket module gives.
_getaddrinfo = socket.getaddrinfo


def webhook_addresses(url: str) -> list[str]:
    """The addresses the webhook's host resolves to now, each checked; WebhookRefused
    if any is not public (only loopback ones for the DEBUG localhost exception)."""
    from credits.controls import address_refusal, webhook_local_allowed

    parts = urlsplit(url)
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    local = webhook_local_allowed(parts.scheme, host)
    found = _getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(info[4][0] for info in found))
    if not addresses:
        raise WebhookRefused(f"{host} resolves to no address")
    for address in addresses:
        reason = address_refusal(address, allow_loopback=local)
        if reason is not None:
            raise WebhookRefused(
                f"{host} resolves to {address}, {reason}: webhooks are posted to public "
                "addresses only"
            )
    return addresses


def _connect(address: str, port: int, timeout: float) -> socket.socket:
    return socket.create_connection((address, port), timeout=timeout)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()  # verifies the certificate against the name


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection to `host` that goes to the addresses checked beforehand (in
    order), never to what the name resolves to at connection time."""

    def __init__(self, host: str, port: int | None, *, addresses: list[str], timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.addresses = addresses

    def _socket(self) -> socket.socket:
        error: OSError | None = None
        for address in self.addresses:
            try:
                return _connect(address, self.port, self.timeout)
            except OSError as exc:
                error = exc
        raise error or OSError("no address to connect to")

    def connect(self) -> None:
        self.sock = self._socket()


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    default_port = 443

    def connect(self) -> None:
        # SNI and the certificate check use the name; the socket goes to a checked address.
        self.sock = _tls_context().wrap_socket(self._socket(), server_hostname=self.host)


def _post(url: str, body: bytes, headers: dict) -> int:
    """POST to the webhook (no redirect followed: an answer is an answer) and return the
    status; WebhookRefused when its host resolves to an address not to post to."""
    addresses = webhook_addresses(url)
    parts = urlsplit(url)
    kind = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = kind(
        parts.hostname,  # an IPv6 literal without its brackets: the port is given apart
        parts.port or (443 if parts.scheme == "https" else 80),
        addresses=addresses,
        timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
    )
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", target, body=body, headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


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
    code, error, refused = None, "", False
    try:
        webhook_url_check(url)
        code = _post(url, body, headers)
    except WebhookRefused as exc:
        # Not retried: the address is the company's setting, not a passing failure.
        error, refused = f"Refused, not sent: {exc}."[:1000], True
    except Exception as exc:  # noqa: BLE001 - any failure of the call is a failed try
        error = f"{type(exc).__name__}: {exc}"[:1000]
    delivered = code is not None and 200 <= code < 300
    if not delivered and not error:
        error = f"HTTP {code}"
    next_try = None
    if not delivered and not refused and attempt < settings.WEBHOOK_MAX_ATTEMPTS:
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
