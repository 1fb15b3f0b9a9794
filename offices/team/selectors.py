"""Reads of the team page: the company's people with their access, pending invites and
the audit. Company admins only (the views check the scope); never another company's."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models import Prefetch, QuerySet

from offices.models import Invite, InviteStatus, Membership, TeamChange
from offices.selectors import PortalScope


def team_members_for(scope: PortalScope) -> QuerySet:
    """Users holding a role in the scope's company, each with `team_memberships` (that
    company's only, offices loaded), by username."""
    company = scope.company
    return (
        get_user_model()
        .objects.filter(memberships__company=company)
        .distinct()
        .prefetch_related(
            Prefetch(
                "memberships",
                queryset=Membership.objects.filter(company=company)
                .select_related("office")
                .order_by("office__name"),
                to_attr="team_memberships",
            )
        )
        .order_by("username", "pk")
    )


def team_member_for(scope: PortalScope, user_id: int):
    """One person of the company (with `team_memberships`), or None (→ 404)."""
    return team_members_for(scope).filter(pk=user_id).first()


def pending_invites_for(scope: PortalScope) -> QuerySet[Invite]:
    return (
        Invite.objects.filter(company=scope.company, status=InviteStatus.PENDING)
        .select_related("invited_by")
        .prefetch_related("offices")
        .order_by("-sent_at", "-pk")
    )


def team_changes_for(scope: PortalScope) -> QuerySet[TeamChange]:
    return TeamChange.objects.filter(company=scope.company).select_related("changed_by")
