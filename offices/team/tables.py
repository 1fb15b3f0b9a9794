"""The team page's tables (django-tables2): people, pending invites, recent changes.
Each cell names its column (data-label) for the phone cards."""

from __future__ import annotations

import django_tables2 as tables
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from offices.models import Role
from offices.team.tokens import INVITE_MAX_AGE


def _label(name: str, **extra) -> dict:
    return {"td": {"data-label": name, **extra}}


def member_access(user) -> str:
    memberships = user.team_memberships
    if any(m.role == Role.COMPANY_ADMIN for m in memberships):
        return "Company admin"
    return "Office admin of " + ", ".join(m.office.name for m in memberships if m.office_id)


class MemberTable(tables.Table):
    username = tables.Column(
        verbose_name="Person", attrs=_label("Person", **{"class": "card-title"})
    )
    email = tables.Column(verbose_name="E-mail", attrs=_label("E-mail"))
    access = tables.Column(
        empty_values=(), verbose_name="Access", orderable=False, attrs=_label("Access")
    )
    last_login = tables.Column(verbose_name="Last log-in", attrs=_label("Last log-in"))
    actions = tables.Column(
        empty_values=(), verbose_name="", orderable=False, attrs=_label("", **{"class": "wide"})
    )

    class Meta:
        attrs = {"class": "data cards-on-phone team-table", "id": "team-table"}
        template_name = "partials/plain_table.html"
        orderable = False
        empty_text = "Nobody yet."

    def __init__(self, *args, tz=None, **kwargs):
        self.tz = tz
        super().__init__(*args, **kwargs)

    def render_username(self, record):
        return record.get_username()

    def render_access(self, record):
        return member_access(record)

    def render_last_login(self, value):
        return f"{timezone.localtime(value, self.tz):%d %b %Y %H:%M}" if value else "never"

    def render_actions(self, record):
        return format_html(
            '<a href="{}">Change access</a> · <a href="{}">Remove</a>',
            reverse("portal:team_member", args=[record.pk]),
            reverse("portal:team_member_remove", args=[record.pk]),
        )


class InviteTable(tables.Table):
    email = tables.Column(
        verbose_name="Invited", attrs=_label("Invited", **{"class": "card-title"})
    )
    access = tables.Column(empty_values=(), verbose_name="As", orderable=False, attrs=_label("As"))
    sent_at = tables.Column(verbose_name="Link expires", attrs=_label("Link expires"))
    actions = tables.Column(
        empty_values=(), verbose_name="", orderable=False, attrs=_label("", **{"class": "wide"})
    )

    class Meta:
        attrs = {"class": "data cards-on-phone invite-table", "id": "invite-table"}
        template_name = "partials/plain_table.html"
        orderable = False
        empty_text = "No pending invites."

    def __init__(self, *args, tz=None, csrf_token="", **kwargs):
        self.tz = tz
        self.csrf_token = csrf_token
        super().__init__(*args, **kwargs)

    def render_access(self, record):
        if record.role == Role.COMPANY_ADMIN:
            return "Company admin"
        return "Office admin of " + ", ".join(o.name for o in record.offices.all())

    def render_sent_at(self, value):
        expires = timezone.localtime(value + INVITE_MAX_AGE, self.tz)
        state = " (expired)" if expires < timezone.now() else ""
        return f"{expires:%d %b %Y %H:%M}{state}"

    def render_actions(self, record):
        return format_html(
            '<form method="post" action="{}" class="inline">'
            '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
            '<button type="submit" class="linkish">Resend</button></form>'
            ' · <a href="{}">Revoke</a>',
            reverse("portal:team_invite_resend", args=[record.pk]),
            self.csrf_token,
            reverse("portal:team_invite_revoke", args=[record.pk]),
        )


class TeamChangeTable(tables.Table):
    created_at = tables.Column(verbose_name="When", attrs=_label("When", **{"class": "nowrap"}))
    action = tables.Column(verbose_name="What", attrs=_label("What"))
    person = tables.Column(verbose_name="Whom", attrs=_label("Whom"))
    change = tables.Column(
        empty_values=(), verbose_name="Old → new", orderable=False, attrs=_label("Old → new")
    )
    changed_by = tables.Column(
        accessor="changed_by__username", verbose_name="By", default="—", attrs=_label("By")
    )

    class Meta:
        attrs = {"class": "data cards-on-phone", "id": "team-changes"}
        template_name = "partials/plain_table.html"
        orderable = False
        empty_text = "No changes yet."

    def __init__(self, *args, tz=None, **kwargs):
        self.tz = tz
        super().__init__(*args, **kwargs)

    def render_created_at(self, value):
        return f"{timezone.localtime(value, self.tz):%d %b %Y %H:%M}"

    def render_action(self, record):
        return record.get_action_display()

    def render_change(self, record):
        if not record.old_value and not record.new_value:
            return "—"
        return f"{record.old_value or '—'} → {record.new_value or '—'}"
