"""Form widgets the portal's pages render often."""

from __future__ import annotations

from django import forms
from django.utils.formats import localize
from django.utils.html import conditional_escape, escape
from django.utils.safestring import SafeData, SafeString, mark_safe


def _text(value) -> str:
    """What `{{ value }}` prints in a template."""
    return conditional_escape(localize(value))


def _value(value) -> str:
    """What `{{ value|stringformat:'s' }}` prints (the filter keeps a safe string safe)."""
    text = str(value)
    return text if isinstance(value, SafeData) else escape(text)


def _attrs_html(attrs: dict) -> str:
    """What Django's django/forms/widgets/attrs.html prints: ` name="value"`, a bare
    ` name` for True, nothing for False."""
    return "".join(
        f" {_text(name)}" if value is True else f' {_text(name)}="{_value(value)}"'
        for name, value in attrs.items()
        if value is not False
    )


class ListSelect(forms.Select):
    """forms.Select writing the markup of Django's select.html and select_option.html
    itself: those templates include a template per option (and one more for its
    attributes), which made a filter listing every office a fifth of a page's time.
    Same output, character for character (tests/portal/test_widgets.py)."""

    def render(self, name, value, attrs=None, renderer=None) -> SafeString:
        widget = self.get_context(name, value, attrs)["widget"]
        parts = [f'<select name="{_text(widget["name"])}"{_attrs_html(widget["attrs"])}>']
        for group_name, options, _index in widget["optgroups"]:
            if group_name:
                parts.append(f'\n  <optgroup label="{_text(group_name)}">')
            parts.extend(
                f'\n  <option value="{_value(option["value"])}"{_attrs_html(option["attrs"])}>'
                f"{_text(option['label'])}</option>\n"
                for option in options
            )
            if group_name:
                parts.append("\n  </optgroup>")
        parts.append("\n</select>")
        # Reviewed: every value above is escaped (tests/portal/test_widgets.py).
        return mark_safe("".join(parts))  # noqa: S308 # nosec B308, B703
