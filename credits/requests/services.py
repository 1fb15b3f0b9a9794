"""Credit requests (SPEC §11): an office admin asks for credits for their office; a
company admin approves (the purchase goes through credits_purchase, the Add credits
path, to the pool or the office's wallet as §2 says at that moment) or declines with a
reason. A request is decided once: its row is locked and its status checked, and the
purchase carries the request as its idempotency key, so two approvals at once make one
purchase and approve + decline at once make one outcome. Both sides are e-mailed after
commit."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.db import retry_on_conflict
from core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from core.mail import mail_after_commit
from core.money import credits_noun
from credits.models import CreditRequest, CreditRequestStatus
from credits.services import _clean_text, credits_purchase, parse_credits
from offices.locks import lock_company
from offices.models import Company, Membership, Office, Role

NOTE_MAX = CreditRequest._meta.get_field("note").max_length
REASON_MAX = CreditRequest._meta.get_field("decline_reason").max_length


def request_amount_parse(value) -> Decimal:
    """An amount within the purchase limits (CREDITS_PURCHASE_MIN..MAX), 4 decimals at
    most; ValidationFailed naming `amount` otherwise."""
    amount = parse_credits(value, field="amount")
    minimum = Decimal(settings.CREDITS_PURCHASE_MIN)
    if amount < minimum:
        problem = f"Request at least {minimum:,} {credits_noun(minimum)}."
        raise ValidationFailed(f"amount: {problem}", [{"field": "amount", "message": problem}])
    return amount


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def _company_admin_emails(company_id: int) -> list[str]:
    return list(
        Membership.objects.filter(company_id=company_id, role=Role.COMPANY_ADMIN)
        .exclude(user__email="")
        .values_list("user__email", flat=True)
    )


@transaction.atomic
def credit_request_create(
    *, company: Company, office: Office, amount, note: str = "", actor
) -> CreditRequest:
    """An office admin's request for credits for one of their offices."""
    if office.company_id != company.pk:
        raise NotFound("No such office.")
    if (
        actor is None
        or not Membership.objects.filter(
            user=actor, company=company, office=office, role=Role.OFFICE_ADMIN
        ).exists()
    ):
        raise PermissionDenied("Only an admin of this office may request credits for it.")
    amount = request_amount_parse(amount)
    note = _clean_text(note, field="note", max_length=NOTE_MAX).strip()
    request = CreditRequest.objects.create(
        company=company, office=office, amount=amount, note=note, requested_by=actor
    )
    who = actor.get_username()
    mail_after_commit(
        subject=f"Credit request: {who} asks for {_money(amount)} credits for {office.name}",
        body=(
            f"{who} (office admin of {office.name}) asks for {_money(amount)} credits.\n"
            + (f"Note: {note}\n" if note else "")
            + f"\nApprove or decline it in the portal: Credit requests, request #{request.pk}."
        ),
        to=_company_admin_emails(company.pk),
    )
    return request


def _locked_pending(company: Company, request_id, actor) -> CreditRequest:
    if (
        actor is None
        or not Membership.objects.filter(
            user=actor, company=company, role=Role.COMPANY_ADMIN
        ).exists()
    ):
        raise PermissionDenied("Only company admins decide credit requests.")
    # Company first, then the request: the lock order of every money write (company →
    # rows it owns → accounts), which credits_purchase continues.
    lock_company(company.pk, exclusive=False)
    request = (
        CreditRequest.objects.select_for_update()
        .select_related("office", "requested_by")
        .filter(company=company, pk=request_id)
        .first()
    )
    if request is None:
        raise NotFound("No such credit request.")
    if request.status != CreditRequestStatus.PENDING:
        raise Conflict(
            f"This request was already {request.get_status_display().lower()}"
            + (f" by {request.decided_by.get_username()}" if request.decided_by_id else "")
            + "."
        )
    return request


@retry_on_conflict()
@transaction.atomic
def credit_request_approve(*, company: Company, request_id: int, actor) -> CreditRequest:
    """Approve a pending request: one purchase of its amount for its office, recorded
    like Add credits (to the pool while pooling is on, else the office's wallet)."""
    request = _locked_pending(company, request_id, actor)
    entry = credits_purchase(
        company=company,
        amount=request.amount,
        office=request.office,
        actor=actor,
        reference=f"credit-request:{request.pk}",
        memo=f"Credit request of {request.requested_by.get_username()} approved",
        idempotency_key=f"credit-request:{request.pk}",
    )
    request.status = CreditRequestStatus.APPROVED
    request.decided_by = actor
    request.decided_at = timezone.now()
    request.purchase = entry
    request.save(update_fields=["status", "decided_by", "decided_at", "purchase"])
    destination = (
        "the shared company pool"
        if entry.account.office_id is None
        else (f"the {request.office.name} wallet")
    )
    mail_after_commit(
        subject=f"Credit request approved: {_money(request.amount)} credits for "
        f"{request.office.name}",
        body=(
            f"{actor.get_username()} approved your request #{request.pk}: "
            f"{_money(request.amount)} credits were added to {destination}."
        ),
        to=[request.requested_by.email],
    )
    return request


@retry_on_conflict()
@transaction.atomic
def credit_request_decline(
    *, company: Company, request_id: int, actor, reason: str
) -> CreditRequest:
    """Decline a pending request; a reason is required and is e-mailed to the requester."""
    reason = _clean_text(reason, field="reason", max_length=REASON_MAX).strip()
    if not reason:
        raise ValidationFailed(
            "reason: say why the request is declined.",
            [{"field": "reason", "message": "A reason is required to decline."}],
        )
    request = _locked_pending(company, request_id, actor)
    request.status = CreditRequestStatus.DECLINED
    request.decided_by = actor
    request.decided_at = timezone.now()
    request.decline_reason = reason
    request.save(update_fields=["status", "decided_by", "decided_at", "decline_reason"])
    mail_after_commit(
        subject=f"Credit request declined: {_money(request.amount)} credits for "
        f"{request.office.name}",
        body=(
            f"{actor.get_username()} declined your request #{request.pk} of "
            f"{_money(request.amount)} credits.\nReason: {reason}"
        ),
        to=[request.requested_by.email],
    )
    return request
