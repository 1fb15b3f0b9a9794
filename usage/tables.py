"""The usage history table (django-tables2)."""

from __future__ import annotations

import django_tables2 as tables
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from offices.templatetags.portal_format import credits

SPLIT_LABELS = (
    ("allowance_part", "Allowance"),
    ("pool_part", "Pool"),
    ("wallet_part", "Wallet"),
    ("ai_part", "AI credits"),
    ("uncovered", "Uncovered"),
)


class UsageTable(tables.Table):
    occurred_at = tables.Column(
        verbose_name="Time", order_by=("occurred_at", "id"), attrs={"td": {"class": "nowrap"}}
    )
    office = tables.Column(accessor="office__name", verbose_name="Office", order_by="office__name")
    service = tables.Column(
        accessor="service__name", verbose_name="Service", order_by="service__name"
    )
    user = tables.Column(
        accessor="user_label",
        verbose_name="User / number",
        order_by=("user_label", "phone_number"),
        empty_values=(),
    )
    quantity = tables.Column(verbose_name="Quantity", attrs={"td": {"class": "num"}})
    cost = tables.Column(
        verbose_name="Cost", attrs={"td": {"class": "num"}, "th": {"class": "num"}}
    )
    split = tables.Column(empty_values=(), verbose_name="Paid from", orderable=False)
    pooling_on = tables.Column(verbose_name="Pooling", orderable=False)

    class Meta:
        attrs = {"class": "data usage-table"}
        template_name = "usage/table.html"
        empty_text = "No usage matches these filters."
        order_by_field = "sort"
        page_field = "page"

    def __init__(self, *args, tz, **kwargs):
        self.tz = tz
        super().__init__(*args, **kwargs)

    def render_occurred_at(self, value):
        return timezone.localtime(value, self.tz).strftime("%Y-%m-%d %H:%M")

    def render_user(self, value, record):
        if record.phone_number and value:
            return format_html('{}<br><span class="muted">{}</span>', value, record.phone_number)
        return value or record.phone_number or "—"

    def render_quantity(self, value, record):
        return f"{credits(value)} {record.service.get_unit_display()}"

    def render_cost(self, value):
        return credits(value)

    def render_split(self, record):
        parts = [
            (label, credits(getattr(record, f))) for f, label in SPLIT_LABELS if getattr(record, f)
        ]
        if not parts:
            return "—"
        return format_html_join("", '<span class="part">{}&nbsp;{}</span>', parts)

    def render_pooling_on(self, value):
        return "On" if value else "Off"
