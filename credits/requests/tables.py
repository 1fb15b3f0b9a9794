"""The credit requests table (django-tables2), cards on a phone."""

from __future__ import annotations

import django_tables2 as tables
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from credits.models import CreditRequest
from offices.templatetags.portal_format import credits


def _td(label: str, css: str = "") -> dict:
    attrs = {"data-label": label}
    if css:
        attrs["class"] = css
    return {"td": attrs}


class CreditRequestTable(tables.Table):
    created_at = tables.Column(verbose_name="Asked", attrs=_td("Asked", "nowrap"))
    office = tables.Column(accessor="office__name", verbose_name="Office", attrs=_td("Office"))
    amount = tables.Column(
        verbose_name="Credits", attrs={**_td("Credits", "num money"), "th": {"class": "num"}}
    )
    requested_by = tables.Column(
        accessor="requested_by__username", verbose_name="By", attrs=_td("By")
    )
    status = tables.Column(verbose_name="Status", attrs=_td("Status"))
    note = tables.Column(verbose_name="Note", default="—", attrs=_td("Note", "wide"))

    class Meta:
        model = CreditRequest
        fields: tuple[str, ...] = ()
        sequence = ("created_at", "office", "amount", "requested_by", "status", "note")
        attrs = {"class": "data cards-on-phone credit-requests-table", "id": "credit-requests"}
        template_name = "partials/plain_table.html"
        orderable = False
        empty_text = "No credit requests."

    def __init__(self, *args, tz=None, **kwargs):
        self.tz = tz
        super().__init__(*args, **kwargs)

    def render_created_at(self, value, record):
        return format_html(
            '<a href="{}">{}</a>',
            reverse("portal:credit_request", args=[record.pk]),
            f"{timezone.localtime(value, self.tz):%d %b %Y %H:%M}",
        )

    def render_amount(self, value):
        return credits(value)

    def render_status(self, record):
        return format_html(
            '<span class="tag status-{}">{}</span>', record.status, record.get_status_display()
        )
