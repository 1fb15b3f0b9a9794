"""The money-controls settings page (SPEC §8): company admins change auto-recharge
rules, low-balance thresholds, pool caps and the alert webhook; office admins see the
controls of their balances, read-only. Removals ask for confirmation first. Every
change goes through credits.controls, which validates and audits it."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.views.generic import TemplateView

from core.errors import NotFound, ValidationFailed
from credits import controls
from credits.controls_selectors import money_controls
from offices.views import PortalMixin


def _pk(value) -> int:
    """A posted id; anything else is no such object (404), like another company's."""
    try:
        return int(str(value))
    except (TypeError, ValueError):
        raise NotFound("No such balance or office.") from None


class ControlsView(PortalMixin, TemplateView):
    template_name = "credits/controls.html"
    confirm_template_name = "credits/controls_confirm.html"
    # What a confirmation page says before each removal.
    removals = {
        "rule_delete": "Remove this auto-recharge rule? The balance will no longer be topped up.",
        "cap_clear": "Remove this office's pool cap? It may then draw the whole pool.",
        "webhook_clear": "Stop sending alerts to the webhook? Its secret is forgotten.",
    }

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["controls"] = money_controls(self.scope)
        context["can_edit"] = self.scope.is_company_admin
        return context

    def post(self, request, *args, **kwargs):
        if not self.scope.is_company_admin:
            raise PermissionDenied("Only company admins change money controls.")
        action = request.POST.get("action", "")
        if action in self.removals and "confirm" not in request.POST:
            return self.response_class(
                request=request,
                template=[self.confirm_template_name],
                context=self.get_context_data(
                    question=self.removals[action], posted=request.POST.items()
                ),
                using=self.template_engine,
            )
        try:
            done = self._apply(action, request.POST)
        except ValidationFailed as error:
            context = self.get_context_data(error=error.message, failed_action=action)
            return self.render_to_response(context, status=422)
        if isinstance(done, str) and action == "webhook":
            # The secret is shown on this one answer only (not stored in a message).
            context = self.get_context_data(new_secret=done)
            return self.render_to_response(context)
        messages.success(request, done)
        return redirect("portal:controls")

    def _apply(self, action: str, data) -> str:
        company, actor = self.scope.company, self.request.user
        if action == "threshold_default":
            controls.alert_threshold_set(company=company, value=data.get("value"), actor=actor)
            return "The default low-balance threshold was saved."
        if action == "threshold":
            controls.alert_threshold_set(
                company=company,
                account=_pk(data.get("account")),
                value=data.get("value"),
                actor=actor,
            )
            return "The balance's low-balance threshold was saved."
        if action == "rule":
            controls.recharge_rule_set(
                company=company,
                account=_pk(data.get("account")),
                threshold=data.get("threshold"),
                amount=data.get("amount"),
                monthly_limit=data.get("monthly_limit"),
                actor=actor,
            )
            return "The auto-recharge rule was saved."
        if action == "rule_delete":
            controls.recharge_rule_delete(company=company, rule=_pk(data.get("rule")), actor=actor)
            return "The auto-recharge rule was removed."
        if action == "cap":
            if not str(data.get("cap", "")).strip():
                raise ValidationFailed("cap: enter a cap (0 or more credits).")
            controls.pool_cap_set(
                company=company, office=_pk(data.get("office")), cap=data.get("cap"), actor=actor
            )
            return "The pool cap was saved."
        if action == "cap_clear":
            controls.pool_cap_set(
                company=company, office=_pk(data.get("office")), cap=None, actor=actor
            )
            return "The pool cap was removed."
        if action == "webhook":
            return controls.webhook_set(company=company, url=data.get("url", ""), actor=actor)
        if action == "webhook_clear":
            controls.webhook_clear(company=company, actor=actor)
            return "Alerts are no longer sent to a webhook."
        raise ValidationFailed("Unknown action.")
