"""Alert notifications (SPEC §8.2) delivered by the real worker of the task queue
(django-tasks with its database backend): e-mail through Django's mail (the test
outbox), and the company's webhook against a real HTTP receiver on 127.0.0.1 that
answers 500 and then 200. Nothing is sent inside the charging transaction."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import transaction
from django_tasks_db.models import DBTaskResult

from credits.controls import alert_threshold_set, webhook_set
from credits.models import Account, AccountKind, Alert, DeliveryStatus, WebhookAttempt
from credits.services import credits_purchase
from offices.models import Membership
from tests.factories import company_admin, company_factory, event, office_admin
from usage.services import usage_ingest


class Receiver:
    """An HTTP server on 127.0.0.1 answering each POST with the next status of `answers`
    (the last one repeated), remembering what it received."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.received: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append((self.headers, body))  # case-insensitive
                status = (
                    receiver.answers.pop(0) if len(receiver.answers) > 1 else receiver.answers[0]
                )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/credits"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def run_worker():
    """The real worker command, processing what is queued, then exiting."""
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", "--queue-name", "*")


def setup_company(care):
    company = company_factory(slug="acme", offices=("austin",))
    admin = company_admin(company, username="boss")
    austin_admin = office_admin(company.offices.get(slug="austin"), username="austin-boss")
    hq_admin = office_admin(company.offices.get(slug="hq"), username="hq-boss")
    return company, admin, austin_admin, hq_admin


@pytest.mark.django_db(transaction=True)
def test_the_worker_delivers_the_email_and_the_webhook_after_one_failed_try(
    services, care, settings
):
    settings.DEBUG = True  # the receiver is http://127.0.0.1
    settings.WEBHOOK_BACKOFF_SECONDS = 0
    company, admin, austin_admin, hq_admin = setup_company(care)
    austin = company.offices.get(slug="austin")
    credits_purchase(company=company, amount="20", office=austin, actor=care)
    wallet = Account.objects.get(company=company, kind=AccountKind.WALLET, office=austin)
    alert_threshold_set(company=company, account=wallet, value="15", actor=care)
    with Receiver([500, 200]) as receiver:
        secret = webhook_set(company=company, url=receiver.url, actor=care)
        # when: austin's usage takes its wallet from 20 to 10 (allowance 100 first)
        with transaction.atomic():
            usage_ingest(
                company=company,
                events=[event(f"e{i}", office="austin") for i in range(110)],
            )
            # then: nothing is queued or sent inside the charging transaction
            assert Alert.objects.filter(kind="low_balance").count() == 1
            assert DBTaskResult.objects.count() == 0
        assert mail.outbox == [] and receiver.received == []
        assert DBTaskResult.objects.count() == 1  # queued at commit
        run_worker()

    (alert,) = Alert.objects.filter(kind="low_balance")
    # the e-mail reached the company admin and austin's admin, not hq's
    (message,) = mail.outbox
    assert sorted(message.to) == sorted([admin.email, austin_admin.email])
    assert hq_admin.email not in message.to
    assert "Austin wallet" in message.subject and "15.00" in message.subject
    # the webhook: one failed try, then one delivered, both recorded, same signed alert
    attempts = list(WebhookAttempt.objects.filter(alert=alert).order_by("attempt"))
    assert [(a.attempt, a.status, a.response_code) for a in attempts] == [
        (1, DeliveryStatus.FAILED, 500),
        (2, DeliveryStatus.DELIVERED, 200),
    ]
    assert attempts[0].next_try_at is not None and attempts[1].next_try_at is None
    assert len(receiver.received) == 2
    for headers, body in receiver.received:
        signed = headers["X-UCP-Timestamp"].encode() + b"." + body
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        assert headers["X-UCP-Signature"] == f"sha256={expected}"
        assert headers["X-UCP-Alert-Id"] == str(alert.pk)
        payload = json.loads(body)
        assert payload["id"] == alert.pk and payload["event"] == "alert.low_balance"
        assert payload["balance"] == {
            "kind": "wallet",
            "office": "austin",
            "label": "Austin wallet",
        }
        assert payload["threshold"] == "15.0000" and payload["balance_at_open"] == "10.0000"
    # a tampered body would not verify
    headers, body = receiver.received[-1]
    forged = hmac.new(
        secret.encode(), headers["X-UCP-Timestamp"].encode() + b"." + body + b" ", hashlib.sha256
    )
    assert headers["X-UCP-Signature"] != f"sha256={forged.hexdigest()}"


@pytest.mark.django_db(transaction=True)
def test_webhook_retries_stop_at_the_limit_with_every_try_recorded(services, care, settings):
    settings.DEBUG = True
    settings.WEBHOOK_BACKOFF_SECONDS = 0
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    company, *_ = setup_company(care)
    with Receiver([503]) as receiver:
        webhook_set(company=company, url=receiver.url, actor=care)
        alert_threshold_set(company=company, value="5", actor=care)  # every balance is 0
        run_worker()
    alerts = Alert.objects.filter(company=company)
    assert alerts.count() == 3  # pool sleeps (pooling off): hq, austin wallets and AI
    for alert in alerts:
        tries = list(WebhookAttempt.objects.filter(alert=alert).order_by("attempt"))
        assert [(t.attempt, t.status, t.response_code) for t in tries] == [
            (1, "failed", 503),
            (2, "failed", 503),
            (3, "failed", 503),
        ]
        assert tries[-1].next_try_at is None  # given up
    assert len(receiver.received) == 9


def test_backoff_doubles_after_each_failed_try(company, care, settings, monkeypatch):
    """Without the worker: each failed try queues the next after 2^(n-1) × the base."""
    from credits import notifications

    settings.WEBHOOK_BACKOFF_SECONDS = 30
    settings.WEBHOOK_MAX_ATTEMPTS = 5
    webhook_set(company=company, url="https://hooks.example.com/x", actor=care)
    alert_threshold_set(company=company, value="5", actor=care)
    alert = Alert.objects.filter(company=company).first()
    monkeypatch.setattr(notifications, "_post", lambda url, body, headers: 502)
    for attempt in (1, 2, 3):
        notifications.webhook_deliver.call(alert.pk, attempt)
    tries = list(WebhookAttempt.objects.filter(alert=alert).order_by("attempt"))
    delays = [(t.next_try_at - t.created_at).total_seconds() for t in tries]
    assert [round(d) for d in delays] == [30, 60, 120]


def test_email_goes_to_company_admins_only_for_the_pool(company, care, settings):
    from credits.notifications import alert_notify

    boss = company_admin(company, username="boss")
    office_admin(company.offices.get(slug="austin"), username="austin-boss")
    alert_threshold_set(company=company, value="5", actor=care)
    ai_alert = Alert.objects.get(company=company, account__kind=AccountKind.AI_AGENT)
    alert_notify.call(ai_alert.pk)
    (message,) = mail.outbox
    assert message.to == [boss.email]
    assert Membership.objects.filter(company=company).count() == 2


# The webhook's address, checked when posting (SSRF) ---------------------------------


PUBLIC = "93.184.215.14"


class Resolver:
    """A stand-in for getaddrinfo: each call answers the next list of `answers` (the
    last one repeated), counting the calls."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, host, port, *args, **kwargs):
        self.calls += 1
        addresses = self.answers[min(self.calls, len(self.answers)) - 1]
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port, 0, 0) if ":" in a else (a, port),
            )
            for a in addresses
        ]


def deliver_once(company, care, monkeypatch, resolver, url="https://hooks.example.com/x"):
    """Post the first alert of `company` once (no worker), resolving with `resolver`;
    returns the recorded attempt and the addresses a connection was opened to."""
    from credits import notifications

    webhook_set(company=company, url=url, actor=care)
    alert_threshold_set(company=company, value="5", actor=care)
    alert = Alert.objects.filter(company=company).first()
    connected = []

    def refuse(address, port, timeout):
        connected.append((address, port))
        raise ConnectionRefusedError("test: no network")

    monkeypatch.setattr(notifications, "_getaddrinfo", resolver)
    monkeypatch.setattr(notifications, "_connect", refuse)
    notifications.webhook_deliver.call(alert.pk, 1)
    return WebhookAttempt.objects.get(alert=alert), connected


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.1.2.3", "a private address"),
        ("192.168.0.10", "a private address"),
        ("127.0.0.1", "a loopback address"),
        ("169.254.169.254", "a link-local address"),
        ("224.0.0.251", "a multicast address"),
        ("240.0.0.1", "address"),  # reserved (Python may also call it private)
        ("0.0.0.0", "an unspecified address"),  # noqa: S104 - the address under test
        ("100.64.0.1", "not a public address"),  # shared address space (carrier NAT)
        ("::1", "a loopback address"),
        ("fd00::1", "a private address"),
        ("fe80::1", "a link-local address"),
        ("::ffff:10.0.0.1", "a private address"),  # IPv4 mapped into IPv6
    ],
)
def test_a_webhook_host_resolving_to_an_internal_address_is_refused_and_recorded(
    company, care, monkeypatch, address, reason
):
    # given: the host resolves to a public address and to `address`
    resolver = Resolver([PUBLIC, address])
    # when: the worker tries to post an alert to it
    attempt, connected = deliver_once(company, care, monkeypatch, resolver)
    # then: no connection at all; the try is recorded as refused, with why, and not retried
    assert connected == []
    assert attempt.status == DeliveryStatus.FAILED and attempt.response_code is None
    assert attempt.error.startswith("Refused, not sent: hooks.example.com resolves to ")
    assert address in attempt.error and reason in attempt.error
    assert attempt.next_try_at is None
    assert DBTaskResult.objects.filter(task_path__endswith="webhook_deliver").count() == 0


def test_a_public_webhook_host_is_connected_to_by_the_checked_address(company, care, monkeypatch):
    """A DNS rebind: the name resolves to a public address when checked and to an internal
    one afterwards. The connection goes to the checked address, with the name in the Host
    header and in TLS SNI; the name is resolved once."""
    from credits import notifications

    with Receiver([200]) as receiver:
        port = receiver.server.server_port
        resolver = Resolver([PUBLIC], ["10.0.0.1"])
        connected, names = [], []

        def to_receiver(address, to_port, timeout):
            connected.append((address, to_port))
            return socket.create_connection(("127.0.0.1", port), timeout=timeout)

        class Tls:  # records the SNI name; the test receiver speaks plain HTTP
            def wrap_socket(self, sock, server_hostname):
                names.append(server_hostname)
                return sock

        monkeypatch.setattr(notifications, "_tls_context", Tls)
        monkeypatch.setattr(notifications, "_getaddrinfo", resolver)
        monkeypatch.setattr(notifications, "_connect", to_receiver)
        webhook_set(company=company, url=f"https://hooks.example.com:{port}/in", actor=care)
        alert_threshold_set(company=company, value="5", actor=care)
        alert = Alert.objects.filter(company=company).first()
        notifications.webhook_deliver.call(alert.pk, 1)

    attempt = WebhookAttempt.objects.get(alert=alert)
    assert (attempt.status, attempt.response_code) == (DeliveryStatus.DELIVERED, 200)
    assert resolver.calls == 1
    assert connected == [(PUBLIC, port)]
    assert names == ["hooks.example.com"]
    ((headers, _body),) = receiver.received
    assert headers["Host"] == f"hooks.example.com:{port}"


def test_the_debug_localhost_exception_allows_loopback_addresses_only(
    company, care, settings, monkeypatch
):
    settings.DEBUG = True
    # localhost that resolves to a private address is refused, even under DEBUG
    attempt, connected = deliver_once(
        company, care, monkeypatch, Resolver(["10.0.0.7"]), url="http://localhost:8000/h"
    )
    assert connected == [] and "10.0.0.7, a private address" in attempt.error
    # and a public name resolving to the loopback is refused under DEBUG too
    WebhookAttempt.objects.all().delete()
    attempt, connected = deliver_once(
        company, care, monkeypatch, Resolver(["127.0.0.1"]), url="https://evil.example.com/h"
    )
    assert connected == [] and "127.0.0.1, a loopback address" in attempt.error


def test_a_name_that_does_not_resolve_is_a_failed_try_that_is_retried(company, care, monkeypatch):
    def no_such_name(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    attempt, connected = deliver_once(company, care, monkeypatch, no_such_name)
    assert connected == [] and attempt.status == DeliveryStatus.FAILED
    assert attempt.error.startswith("gaierror") and attempt.next_try_at is not None
    assert DBTaskResult.objects.filter(task_path__endswith="webhook_deliver").count() == 1


def test_an_ipv6_literal_webhook_is_checked_and_connected_to_with_its_port(
    company, care, monkeypatch
):
    # given: a public IPv6 address as the host, on the default HTTPS port
    attempt, connected = deliver_once(
        company, care, monkeypatch, socket.getaddrinfo, url="https://[2606:4700::1111]/h"
    )
    # then: the connection goes to that address on port 443 (refused here: no network)
    assert connected == [("2606:4700::1111", 443)]
    assert attempt.error.startswith("ConnectionRefusedError")
