"""Shared by the team and password-reset tests: running the task queue's worker and
reading links out of the mails it sent."""

from __future__ import annotations

import re

from django.core import mail
from django.core.management import call_command

LINK = re.compile(r"https?://\S+")


def run_worker() -> None:
    """The real worker command, processing what is queued, then exiting."""
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", "--queue-name", "*")


def last_link(to: str) -> str:
    """The link in the newest mail to `to`, as a path (the test client's URL)."""
    messages = [m for m in mail.outbox if to in m.to]
    assert messages, f"no mail to {to}: {[m.to for m in mail.outbox]}"
    url = LINK.findall(messages[-1].body)[0]
    return re.sub(r"^https?://[^/]+", "", url)
