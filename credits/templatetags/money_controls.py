"""The open-alerts banner of every portal page (templates/credits/_alerts.html)."""

from django import template

from credits.controls_selectors import banner_alerts

register = template.Library()


BANNER_MAX = 5


@register.simple_tag
def open_alerts_of(scope, page_controls=None):
    """The open alerts the user of `scope` is concerned by (none without a scope); taken
    from the balance page's controls when it has read them already."""
    if not scope:
        return []
    alerts = getattr(page_controls, "alerts", None)
    if alerts is None:
        alerts = banner_alerts(scope)
    return alerts[:BANNER_MAX]
