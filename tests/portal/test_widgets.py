"""ListSelect writes exactly what Django's select templates write."""

import pytest
from django import forms
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy

from core.widgets import ListSelect
from offices.selectors import portal_scope_for
from usage.filters import UsageFilter
from usage.selectors import usage_history_for

CHOICES = [
    ("", "All offices"),
    (1, 'O\'Brien & <Sons> "x"'),
    ("a&b", gettext_lazy("Lazy label")),
    ("<s>", mark_safe("<em>safe</em>")),  # noqa: S308 - a label marked safe stays as is
    ("G <1>", [("x", "X"), (2, 2), (2.5, "two and a half")]),
    (None, "none"),
]


@pytest.mark.parametrize("value", [None, "", "1", 1, "a&b", "x", ["x", "1"], "missing"])
@pytest.mark.parametrize(
    "attrs",
    [
        {},
        {"id": "id_f", "class": 'a "b"', "required": True, "disabled": False, "n": None},
        {"data-x": mark_safe("<b>"), "aria-describedby": "id_f_error"},  # noqa: S308
    ],
)
def test_list_select_renders_what_select_renders(value, attrs):
    django_select = forms.Select(attrs=attrs, choices=CHOICES)
    ours = ListSelect(attrs=attrs, choices=CHOICES)
    for name in ("f", 'we"ird<name>'):
        assert ours.render(name, value, attrs={"extra": 1}) == django_select.render(
            name, value, attrs={"extra": 1}
        )


@pytest.mark.parametrize(
    "data", [None, {}, {"office": "__austin__", "credit_kind": "ai_agent"}, {"office": "999"}]
)
def test_usage_filter_selects_render_as_before(acme, acme_admin, offices, data):
    scope = portal_scope_for(acme_admin)
    if data and data.get("office") == "__austin__":
        data = {**data, "office": str(offices["austin"].pk)}
    filterset = UsageFilter(data, queryset=usage_history_for(scope), scope=scope)
    form = filterset.form
    form.is_valid()
    for name in ("office", "service"):
        field = form.fields[name]
        assert isinstance(field.widget, ListSelect)
        ours = str(form[name])
        plain = forms.Select(attrs=field.widget.attrs)
        plain.choices, plain.is_required = field.widget.choices, field.widget.is_required
        field.widget = plain
        assert ours == str(form[name])
        assert ours.count("<option") == len(list(field.choices))
