"""The usage history table (django-tables2)."""

from __future__ import annotations

import django_tables2 as tables
from django.utils import timezone
from django.utils.html import conditional_escape, format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from offices.templatetags.portal_format import credits, units

SPLIT_LABELS = (
    ("allowance_part", "Allowance"),
    ("pool_part", "Pool"),
    ("wallet_part", "Wallet"),
    ("ai_part", "AI credits"),
    ("uncovered", "Uncovered"),
)


class UsageTable(tables.Table):
    # Every sort ends with the id: rows that tie (the same cost, office…) keep one order
    # from page to page, so paging never repeats or skips one.
    # data-label: phones show each row as a card of label/value lines.
    occurred_at = tables.Column(
        verbose_name="Time",
        order_by=("occurred_at", "id"),
        attrs={"td": {"class": "nowrap card-title", "data-label": "Time"}},
    )
    office = tables.Column(
        accessor="office__name",
        verbose_name="Office",
        order_by=("office__name", "id"),
        attrs={"td": {"data-label": "Office"}},
    )
    service = tables.Column(
        accessor="service__name",
        verbose_name="Service",
        order_by=("service__name", "id"),
        attrs={"td": {"data-label": "Service"}},
    )
    user = tables.Column(
        accessor="user_label",
        verbose_name="User / number",
        order_by=("user_label", "phone_number", "id"),
        empty_values=(),
        attrs={"td": {"data-label": "User / number"}},
    )
    # Quantities of different services are in different units: sorted within a service.
    quantity = tables.Column(
        verbose_name="Quantity",
        order_by=("service_id", "quantity", "id"),
        attrs={"td": {"class": "num", "data-label": "Quantity"}},
    )
    cost = tables.Column(
        verbose_name="Cost",
        order_by=("cost", "id"),
        attrs={"td": {"class": "num money", "data-label": "Cost"}, "th": {"class": "num"}},
    )
    split = tables.Column(
        empty_values=(),
        verbose_name="Paid from",
        orderable=False,
        attrs={"td": {"class": "money", "data-label": "Paid from"}},
    )
    pooling_on = tables.Column(
        verbose_name="Pooling", orderable=False, attrs={"td": {"data-label": "Pooling"}}
    )

    class Meta:
        attrs = {"class": "data usage-table cards-on-phone"}
        template_name = "partials/data_table.html"
        empty_text = "No usage matches these filters."
        order_by_field = "sort"
        page_field = "page"

    def __init__(self, *args, tz, **kwargs):
        self.tz = tz
        self._units = {}  # service id → its unit's label
        super().__init__(*args, **kwargs)

    def rows_html(self) -> list[SafeString]:
        """The <tr> rows of the current page, with the markup django-tables2's template
        gives them (row classes, each column's td attributes, escaped cells), but each
        cell rendered by a direct call: going through the template and tables2's per-cell
        argument introspection was most of the history page's time."""
        columns = [(column, column.attrs["td"].as_html()) for column in self.columns]
        rows = []
        for row in self.paginated_rows:
            cells = self.cells(row.record)
            tds = "".join(
                f"\n<td {attrs}>{conditional_escape(cells[column.name])}</td>"
                for column, attrs in columns
            )
            # Reviewed: attributes and cells are escaped (tests/portal/test_page_escaping.py).
            row_html = f"<tr {row.attrs.as_html()}>{tds}\n</tr>"
            rows.append(mark_safe(row_html))  # noqa: S308 # nosec B308, B703
        return rows

    def cells(self, record) -> dict:
        """What each column shows for `record`, as tables2 would render it."""
        return {
            "occurred_at": self._cell("occurred_at", record.occurred_at),
            "office": self._cell("office", record.office.name),
            "service": self._cell("service", record.service.name),
            "user": self.render_user(record.user_label, record),  # empty_values=(): always
            "quantity": self._cell("quantity", record.quantity, record),
            "cost": self._cell("cost", record.cost),
            "split": self.render_split(record),  # likewise
            "pooling_on": self._cell("pooling_on", record.pooling_on),
        }

    def _cell(self, name: str, value, *args):
        """tables2's rule: an empty value shows the column's default, any other value
        its render_ method's result (or itself)."""
        if value in self.base_columns[name].empty_values:
            return self.columns[name].default
        render = getattr(self, f"render_{name}", None)
        return value if render is None else render(value, *args)

    def render_occurred_at(self, value):
        return timezone.localtime(value, self.tz).strftime("%Y-%m-%d %H:%M")

    def render_user(self, value, record):
        if record.phone_number and value:
            return format_html('{}<br><span class="muted">{}</span>', value, record.phone_number)
        return value or record.phone_number or "—"

    def render_quantity(self, value, record):
        unit = self._units.get(record.service_id)
        if unit is None:
            unit = self._units[record.service_id] = record.service.get_unit_display()
        return units(value, unit)

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
