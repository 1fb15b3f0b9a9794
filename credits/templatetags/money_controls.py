"""The open-alerts banner of every portal page (templates/credits/_alerts.html)."""

from django import template

from credits.controls_selectors import open_alerts

register = template.Library()


@register.simple_tag
def open_alerts_of(scope):
    """The open alerts the user of `scope` is concerned by (none without a scope)."""
    if not scope:
        return []
    return list(open_alerts(scope)[:5])
