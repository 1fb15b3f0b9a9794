"""Invite links (SPEC §11): Django's TimestampSigner over the invite's id and its one-use
nonce. The signature proves the portal made the link and when; the nonce on the row makes
it one-use (a resend replaces it, acceptance and revocation clear it)."""

from __future__ import annotations

import datetime as dt
import secrets

from django.core import signing

INVITE_SALT = "offices.team.invite"
INVITE_MAX_AGE = dt.timedelta(hours=72)


class InviteLinkInvalid(Exception):
    """Not a link this portal made (tampered, truncated)."""


class InviteLinkExpired(Exception):
    """A genuine link older than INVITE_MAX_AGE."""


def invite_nonce_new() -> str:
    return secrets.token_urlsafe(24)


def invite_token(*, invite_id: int, nonce: str) -> str:
    return signing.TimestampSigner(salt=INVITE_SALT).sign_object({"i": invite_id, "n": nonce})


def invite_token_read(token: str) -> tuple[int, str]:
    """(invite id, nonce) of a genuine, unexpired link; InviteLinkInvalid or
    InviteLinkExpired otherwise."""
    signer = signing.TimestampSigner(salt=INVITE_SALT)
    try:
        value = signer.unsign_object(token, max_age=INVITE_MAX_AGE)
    except signing.SignatureExpired:
        raise InviteLinkExpired from None
    except (signing.BadSignature, ValueError, TypeError):
        raise InviteLinkInvalid from None
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("i"), int)
        or not isinstance(value.get("n"), str)
    ):
        raise InviteLinkInvalid
    return value["i"], value["n"]
