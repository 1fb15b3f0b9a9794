"""Writes of the team page (SPEC §11): invites, accepting one, changing and removing
someone's access. Each is audited (TeamChange: who, when, to whom, old → new) in the
transaction that makes it; mail is queued after commit (offices.team.mail).

Changes of a company's access take the row locks of its memberships (pk order) first,
so two company admins demoting each other at once cannot leave the company without one."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth import get_user_model, password_validation
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import DomainError, Gone, NotFound, PermissionDenied, ValidationFailed
from offices.models import (
    Company,
    Invite,
    InviteStatus,
    Membership,
    Office,
    Role,
    TeamAction,
    TeamChange,
)
from offices.services import membership_grant
from offices.team.mail import invite_mail_after_commit
from offices.team.tokens import (
    INVITE_MAX_AGE,
    InviteLinkExpired,
    InviteLinkInvalid,
    invite_nonce_new,
    invite_token_read,
)

EMAIL_MAX = Invite._meta.get_field("email").max_length


def _invalid(field: str, problem: str) -> ValidationFailed:
    return ValidationFailed(f"{field}: {problem}", [{"field": field, "message": problem}])


def _require_company_admin(actor, company: Company) -> None:
    if (
        actor is None
        or not Membership.objects.filter(
            user=actor, company=company, role=Role.COMPANY_ADMIN
        ).exists()
    ):
        raise PermissionDenied("Only the company's admins manage its team.")


def _audit(*, company: Company, action: str, person: str, old="", new="", actor) -> None:
    TeamChange.objects.create(
        company=company,
        action=action,
        person=person[:254],
        old_value=old[:1000],
        new_value=new[:1000],
        changed_by=actor,
    )


def email_clean(value) -> str:
    """An e-mail address as stored: stripped, lower-cased, valid; ValidationFailed else."""
    if not isinstance(value, str) or "\x00" in value:
        raise _invalid("email", "Enter a valid e-mail address.")
    email = value.strip().lower()
    if len(email) > EMAIL_MAX:
        raise _invalid("email", f"At most {EMAIL_MAX} characters.")
    try:
        validate_email(email)
    except ValidationError:
        raise _invalid("email", "Enter a valid e-mail address.") from None
    return email


def _offices_of(company: Company, role: str, offices: Iterable[Office] | None) -> list[Office]:
    """The offices a role is given: none for company admins, at least one of this
    company's for office admins."""
    if role not in Role.values:
        raise _invalid("role", "Choose company admin or office admin.")
    chosen = list(offices or [])
    if role == Role.COMPANY_ADMIN:
        return []
    if not chosen:
        raise _invalid("offices", "Choose at least one office.")
    ids = {office.pk for office in chosen}
    found = list(Office.objects.filter(company=company, pk__in=ids).order_by("name", "pk"))
    if len(found) != len(ids):
        raise _invalid("offices", "Choose offices of your own company.")
    return found


def access_text(role: str, offices: Iterable[Office]) -> str:
    """How the audit and the team page word someone's access."""
    if role == Role.COMPANY_ADMIN:
        return "Company admin"
    names = sorted(office.name for office in offices)
    return "Office admin of " + ", ".join(names) if names else "No access"


def _memberships_text(memberships: list[Membership]) -> str:
    if any(m.role == Role.COMPANY_ADMIN for m in memberships):
        return "Company admin"
    return access_text(Role.OFFICE_ADMIN, [m.office for m in memberships if m.office_id])


@transaction.atomic
def invite_create(
    *, company: Company, email: str, role: str, offices=None, actor, link_base: str
) -> Invite:
    """Invite a person by e-mail, as company admin or office admin of some of the
    company's offices. One pending invite per address; someone already on the team is
    not invited again."""
    _require_company_admin(actor, company)
    email = email_clean(email)
    chosen = _offices_of(company, role, offices)
    if Membership.objects.filter(company=company, user__email__iexact=email).exists():
        raise _invalid("email", "This person is already on your team; change their access.")
    if Invite.objects.filter(company=company, email=email, status=InviteStatus.PENDING).exists():
        raise _invalid("email", "This address has a pending invite; resend it instead.")
    now = timezone.now()
    try:
        with transaction.atomic():
            invite = Invite.objects.create(
                company=company,
                email=email,
                role=role,
                nonce=invite_nonce_new(),
                invited_by=actor,
                sent_at=now,
            )
    except IntegrityError:  # the same address invited at the same moment
        raise _invalid("email", "This address has a pending invite; resend it instead.") from None
    invite.offices.set(chosen)
    _audit(
        company=company,
        action=TeamAction.INVITED,
        person=email,
        new=access_text(role, chosen),
        actor=actor,
    )
    invite_mail_after_commit(invite=invite, base_url=link_base)
    return invite


def _pending_invite_locked(company: Company, invite_id) -> Invite:
    invite = Invite.objects.select_for_update().filter(company=company, pk=invite_id).first()
    if invite is None:
        raise NotFound("No such invite.")
    if invite.status != InviteStatus.PENDING:
        raise ValidationFailed(f"This invite was already {invite.get_status_display().lower()}.")
    return invite


@transaction.atomic
def invite_resend(*, company: Company, invite_id: int, actor, link_base: str) -> Invite:
    """Mail a pending invite again with a new link, valid 72 hours; earlier links stop
    working."""
    _require_company_admin(actor, company)
    invite = _pending_invite_locked(company, invite_id)
    invite.nonce = invite_nonce_new()
    invite.sent_at = timezone.now()
    invite.save(update_fields=["nonce", "sent_at"])
    _audit(company=company, action=TeamAction.INVITE_RESENT, person=invite.email, actor=actor)
    invite_mail_after_commit(invite=invite, base_url=link_base)
    return invite


@transaction.atomic
def invite_revoke(*, company: Company, invite_id: int, actor) -> Invite:
    """Withdraw a pending invite: its link stops working."""
    _require_company_admin(actor, company)
    invite = _pending_invite_locked(company, invite_id)
    invite.status = InviteStatus.REVOKED
    invite.nonce = ""
    invite.closed_at = timezone.now()
    invite.save(update_fields=["status", "nonce", "closed_at"])
    _audit(
        company=company,
        action=TeamAction.INVITE_REVOKED,
        person=invite.email,
        old="Pending invite",
        new="Revoked",
        actor=actor,
    )
    return invite


def invite_for_token(token: str) -> Invite:
    """The pending invite a link opens; Gone (410) for a used, revoked, replaced or
    expired one, a DomainError (400) for a link the portal did not make."""
    try:
        invite_id, nonce = invite_token_read(token)
    except InviteLinkExpired:
        raise Gone("This invite link has expired. Ask your company admin to resend it.") from None
    except InviteLinkInvalid:
        # 400: not a link this portal made (no field to name).
        raise DomainError("This invite link is not valid. Check that it is complete.") from None
    invite = Invite.objects.select_related("company").filter(pk=invite_id).first()
    if invite is None:
        raise Gone("This invite no longer exists.")
    if invite.status == InviteStatus.ACCEPTED:
        raise Gone("This invite was already used. Log in with the password you set.")
    if invite.status == InviteStatus.REVOKED:
        raise Gone("This invite was withdrawn by your company admin.")
    if invite.nonce != nonce:
        raise Gone("A newer invite was sent to you; use the link in the latest e-mail.")
    if invite.sent_at + INVITE_MAX_AGE < timezone.now():
        raise Gone("This invite link has expired. Ask your company admin to resend it.")
    return invite


_username_validator = UnicodeUsernameValidator()


@transaction.atomic
def invite_accept(*, token: str, username: str, password: str):
    """Accept an invite: create the person's login with a password that passes Django's
    validators and grant the invited access. The link works once."""
    invite = invite_for_token(token)
    invite = Invite.objects.select_for_update().get(pk=invite.pk)
    invite_for_token(token)  # again, under the lock: a concurrent accept has closed it
    User = get_user_model()
    username = (username or "").strip()
    if not username or len(username) > 150 or "\x00" in username:
        raise _invalid("username", "Enter a username of at most 150 characters.")
    try:
        _username_validator(username)
    except ValidationError as error:
        raise _invalid("username", " ".join(error.messages)) from None
    if User.objects.filter(username__iexact=username).exists():
        raise _invalid("username", "This username is taken; choose another.")
    if not isinstance(password, str) or "\x00" in password:
        raise _invalid("password", "Enter a password.")
    candidate = User(username=username, email=invite.email)
    try:
        password_validation.validate_password(password, user=candidate)
    except ValidationError as error:
        raise ValidationFailed(
            "password: " + " ".join(error.messages),
            [{"field": "password", "message": message} for message in error.messages],
        ) from None
    candidate.set_password(password)
    try:
        with transaction.atomic():
            candidate.save()
    except IntegrityError:
        raise _invalid("username", "This username is taken; choose another.") from None
    offices = list(invite.offices.filter(company=invite.company_id))
    if invite.role == Role.COMPANY_ADMIN:
        membership_grant(user=candidate, company=invite.company)
    else:
        if not offices:
            raise Gone("The offices of this invite no longer exist; ask for a new invite.")
        for office in offices:
            membership_grant(user=candidate, company=invite.company, office=office)
    invite.status = InviteStatus.ACCEPTED
    invite.nonce = ""
    invite.closed_at = timezone.now()
    invite.accepted_user = candidate
    invite.save(update_fields=["status", "nonce", "closed_at", "accepted_user"])
    _audit(
        company=invite.company,
        action=TeamAction.INVITE_ACCEPTED,
        person=f"{username} <{invite.email}>",
        old="Pending invite",
        new=access_text(invite.role, offices),
        actor=candidate,
    )
    return candidate


def _locked_memberships(company: Company) -> list[Membership]:
    return list(
        Membership.objects.select_for_update(of=("self",))
        .filter(company=company)
        .select_related("office", "user")
        .order_by("pk")
    )


def _person(memberships: list[Membership], user_id) -> list[Membership]:
    mine = [m for m in memberships if m.user_id == user_id]
    if not mine:
        raise NotFound("No such person on your team.")
    return mine


def _admins(memberships: list[Membership]) -> set[int]:
    return {m.user_id for m in memberships if m.role == Role.COMPANY_ADMIN}


@transaction.atomic
def member_access_set(*, company: Company, user_id: int, role: str, offices=None, actor) -> bool:
    """Make someone company admin, or office admin of exactly the chosen offices. The
    company always keeps at least one company admin. True when something changed."""
    _require_company_admin(actor, company)
    memberships = _locked_memberships(company)
    mine = _person(memberships, user_id)
    chosen = _offices_of(company, role, offices)
    old = _memberships_text(mine)
    new = access_text(role, chosen)
    if old == new:
        return False
    if role != Role.COMPANY_ADMIN and _admins(memberships) == {user_id}:
        raise ValidationFailed(
            "This is the company's last company admin: make someone else company admin first."
        )
    user = mine[0].user
    if role == Role.COMPANY_ADMIN:
        Membership.objects.filter(company=company, user_id=user_id, office__isnull=False).delete()
        membership_grant(user=user, company=company)
    else:
        keep = {office.pk for office in chosen}
        Membership.objects.filter(company=company, user_id=user_id).exclude(
            office_id__in=keep
        ).delete()
        for office in chosen:
            membership_grant(user=user, company=company, office=office)
    _audit(
        company=company,
        action=TeamAction.ACCESS_CHANGED,
        person=user.get_username(),
        old=old,
        new=new,
        actor=actor,
    )
    return True


@transaction.atomic
def member_remove(*, company: Company, user_id: int, actor) -> None:
    """Remove someone's access to the company (their login stays, for other companies).
    The last company admin cannot be removed, not even by themselves."""
    _require_company_admin(actor, company)
    memberships = _locked_memberships(company)
    mine = _person(memberships, user_id)
    if _admins(memberships) == {user_id}:
        raise ValidationFailed(
            "This is the company's last company admin and cannot be removed: make someone "
            "else company admin first."
        )
    Membership.objects.filter(company=company, user_id=user_id).delete()
    _audit(
        company=company,
        action=TeamAction.ACCESS_REMOVED,
        person=mine[0].user.get_username(),
        old=_memberships_text(mine),
        new="No access",
        actor=actor,
    )
