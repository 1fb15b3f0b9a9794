"""Alert notifications (SPEC §8.2) delivered by the real worker of the task queue
(django-tasks with its database backend): e-mail through Django's mail (the test
outbox), and the company's webhook against a real HTTP receiver on 127.0.0.1 that
answers 500 and then 200. Nothing is sent inside the charging transaction."""

from __future__ import annotations

import hashlib
import hmac
import json
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
