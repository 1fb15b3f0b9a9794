"""The activity (ledger) table (django-tables2), on its own page and, short, on the
balance page."""

from __future__ import annotations

import django_tables2 as tables
from django.utils import timezone
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe

from credits.models import AccountKind, LedgerEntry
from offices.templatetags.portal_format import credits


def entry_account_label(entry: LedgerEntry) -> str:
    account = entry.account
    if account.kind == AccountKind.WALLET:
        return f"{account.office.name} wallet"
    return account.get_kind_display()


def entry_note(entry: LedgerEntry) -> str:
    return " · ".join(text for text in (entry.reference, entry.memo) if text)


class ActivityTable(tables.Table):
    created_at = tables.Column(
        verbose_name="When", order_by=("created_at", "id"), attrs={"td": {"class": "nowrap"}}
    )
    entry_type = tables.Column(verbose_name="What", attrs={"td": {"data-label": "What"}})
    account = tables.Column(
        empty_values=(),
        verbose_name="Balance",
        orderable=False,
        attrs={"td": {"data-label": "Balance"}},
    )
    amount = tables.Column(
        verbose_name="Amount",
        attrs={
            "td": {
                "class": lambda record: f"num money {'neg' if record.amount < 0 else 'pos'}",
                "data-label": "Amount",
            },
            "th": {"class": "num"},
        },
    )
    balance_after = tables.Column(
        verbose_name="Balance after",
        orderable=False,
        attrs={
            "td": {"class": "num money", "data-label": "Balance after"},
            "th": {"class": "num"},
        },
    )
    created_by = tables.Column(
        accessor="created_by__username",
        verbose_name="By",
        orderable=False,
        default="—",
        attrs={"td": {"data-label": "By"}},
    )
    note = tables.Column(
        empty_values=(),
        verbose_name="Note",
        orderable=False,
        attrs={"td": {"class": "wide", "data-label": "Note"}},
    )

    class Meta:
        model = LedgerEntry
        fields: tuple[str, ...] = ()
        sequence = (
            "created_at",
            "entry_type",
            "account",
            "amount",
            "balance_after",
            "created_by",
            "note",
        )
        attrs = {"class": "data activity-table cards-on-phone", "id": "activity-table"}
        empty_text = "No balance activity matches these filters."
        order_by_field = "sort"
        page_field = "page"
        template_name = "partials/data_table.html"

    def __init__(self, *args, tz, **kwargs):
        self.tz = tz
        self._last_change = None  # the pooling change of the row rendered before
        super().__init__(*args, **kwargs)

    def rows_html(self) -> list[SafeString]:
        """The <tr> rows of the current page, each cell rendered by a direct call with the
        td attributes its column declares (a callable one called with the record), escaped:
        tables2's template and per-cell introspection were most of the balance page's
        time, as on the usage history (usage/tables.py)."""
        columns = [(column.name, column.column.attrs.get("td", {})) for column in self.columns]
        rows = []
        for row in self.paginated_rows:
            record = row.record
            cells = self.cells(record)
            tds = []
            for name, declared in columns:
                attrs = "".join(
                    f' {conditional_escape(key)}="'
                    f'{conditional_escape(value(record=record) if callable(value) else value)}"'
                    for key, value in declared.items()
                )
                tds.append(f"<td{attrs}>{conditional_escape(cells[name])}</td>")
            # Reviewed: attributes and cells are escaped (tests/portal/test_page_escaping.py).
            row_html = f'<tr data-entry="{record.pk}">{"".join(tds)}</tr>'
            rows.append(mark_safe(row_html))  # noqa: S308 # nosec B308, B703
        return rows

    def cells(self, entry: LedgerEntry) -> dict:
        """What each column shows for `entry`, in column order (the note remembers the
        entry before it)."""
        return {
            "created_at": self.render_created_at(entry.created_at),
            "entry_type": self.render_entry_type(entry),
            "account": self.render_account(entry),
            "amount": self.render_amount(entry.amount),
            "balance_after": self.render_balance_after(entry.balance_after),
            "created_by": entry.created_by.get_username() if entry.created_by else "—",
            "note": self.render_note(entry),
        }

    def render_created_at(self, value):
        return timezone.localtime(value, self.tz).strftime("%Y-%m-%d %H:%M")

    def render_entry_type(self, record):
        return record.get_entry_type_display()

    def render_account(self, record):
        return entry_account_label(record)

    def render_amount(self, value):
        return f"+{credits(value)}" if value > 0 else credits(value)

    def render_balance_after(self, value):
        return credits(value)

    def render_note(self, record):
        # The entries of one pooling transfer (a pair per balance moved) are listed
        # together: the reason is shown on the first of them only.
        change = record.pooling_change_id
        same = change is not None and change == self._last_change
        self._last_change = change
        if same:
            return format_html('<span class="muted">{}</span>', "same pooling transfer ↑")
        return entry_note(record) or "—"
