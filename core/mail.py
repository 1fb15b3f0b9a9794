"""Mail of the portal's own (invites, password resets, credit requests): always sent by
the task queue's worker, queued only once the transaction that caused it commits (SPEC
§11), so a rolled-back change never mails anyone and no request waits for SMTP."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django_tasks import task


@task()
def mail_send(subject: str, body: str, to: list[str]) -> None:
    """Send one plain-text e-mail (run by `manage.py db_worker`)."""
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, to)


def mail_after_commit(*, subject: str, body: str, to: Iterable[str]) -> None:
    """Queue `mail_send` when the current transaction commits (at once outside one)."""
    recipients = sorted({address for address in to if address})
    if not recipients:
        return
    transaction.on_commit(lambda: mail_send.enqueue(subject, body, recipients))
