"""The credit requests list's filter: by status (pending by default on the page)."""

from __future__ import annotations

import django_filters

from credits.models import CreditRequest, CreditRequestStatus


class CreditRequestFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(
        choices=CreditRequestStatus.choices, empty_label="Any status", label="Status"
    )

    class Meta:
        model = CreditRequest
        fields = ["status"]

    def __init__(self, *args, scope=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.scope = scope
