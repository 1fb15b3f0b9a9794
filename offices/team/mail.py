"""The mails of invites and password resets, built and sent by the task queue's worker
(django-tasks: `manage.py db_worker`). Only ids travel through the queue: the worker
makes the link itself, so no usable link is stored in the task table."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django_tasks import task

from offices.models import Invite, InviteStatus, Role
from offices.team.tokens import INVITE_MAX_AGE, invite_token

SITE_NAME = "Unified Credit Pooling"


def invite_access_text(invite: Invite) -> str:
    if invite.role == Role.COMPANY_ADMIN:
        return f"company admin of {invite.company.name}"
    names = ", ".join(office.name for office in invite.offices.all())
    return f"office admin of {names} ({invite.company.name})"


@task()
def invite_mail(invite_id: int, nonce: str, base_url: str) -> None:
    """Mail the invite's link, if the invite is still pending with this nonce (a resend or
    a revocation before the worker ran makes this one moot)."""
    invite = Invite.objects.select_related("company", "invited_by").filter(pk=invite_id).first()
    if invite is None or invite.status != InviteStatus.PENDING or invite.nonce != nonce:
        return
    token = invite_token(invite_id=invite.pk, nonce=nonce)
    link = base_url.rstrip("/") + reverse("invite_accept", args=[token])
    hours = int(INVITE_MAX_AGE.total_seconds() // 3600)
    inviter = invite.invited_by.get_username() if invite.invited_by else "Your company"
    body = render_to_string(
        "offices/team/invite_email.txt",
        {
            "invite": invite,
            "access": invite_access_text(invite),
            "link": link,
            "hours": hours,
            "inviter": inviter,
            "site_name": SITE_NAME,
        },
    )
    send_mail(
        f"You are invited to {invite.company.name} on {SITE_NAME}",
        body,
        settings.DEFAULT_FROM_EMAIL,
        [invite.email],
    )


def invite_mail_after_commit(*, invite: Invite, base_url: str) -> None:
    invite_id, nonce = invite.pk, invite.nonce
    transaction.on_commit(lambda: invite_mail.enqueue(invite_id, nonce, base_url))


@task()
def password_reset_mail(user_id: int, base_url: str) -> None:
    """Mail a password-reset link (Django's token generator) to an active user."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None or not user.has_usable_password() or not user.email:
        return
    parts = urlsplit(base_url)
    link = base_url.rstrip("/") + reverse(
        "password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    body = render_to_string(
        "registration/password_reset_email.txt",
        {"user": user, "link": link, "domain": parts.netloc, "site_name": SITE_NAME},
    )
    send_mail(
        f"Reset your password on {SITE_NAME}", body, settings.DEFAULT_FROM_EMAIL, [user.email]
    )
