"""Reads of credit requests, scoped: company admins see their company's, office admins
those of their offices."""

from __future__ import annotations

from django.db.models import QuerySet

from credits.models import CreditRequest, CreditRequestStatus
from offices.selectors import PortalScope


def credit_requests_for(scope: PortalScope) -> QuerySet[CreditRequest]:
    return scope.restrict(CreditRequest.objects.all()).select_related(
        "office", "requested_by", "decided_by"
    )


def credit_requests_pending_for(scope: PortalScope) -> QuerySet[CreditRequest]:
    return credit_requests_for(scope).filter(status=CreditRequestStatus.PENDING)
