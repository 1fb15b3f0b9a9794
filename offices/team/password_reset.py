"""Password reset by e-mail (SPEC §11) with Django's own views and token generator. The
mail is sent by the task queue after commit (offices.team.mail), and the request form
answers the same whether or not an account has the address. It is rate limited like
log-in (AXES_FAILURE_LIMIT requests per AXES_COOLOFF_TIME), counted per client address
and per e-mail address, so nobody can flood one inbox or probe from one machine."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import PasswordResetForm
from django.core.cache import cache
from django.db import transaction
from django.shortcuts import render
from django.urls import reverse_lazy

from core.client_ip import client_ip
from offices.team.mail import password_reset_mail

LIMITED_TEMPLATE = "registration/password_reset_limited.html"


def _window_seconds() -> int:
    cooloff = settings.AXES_COOLOFF_TIME
    hours = cooloff.total_seconds() / 3600 if hasattr(cooloff, "total_seconds") else cooloff
    return max(60, int(float(hours) * 3600))


def password_reset_allowed(*, ip: str | None, email: str) -> bool:
    """Count one reset request for this client address and this e-mail address; False
    once either has made more than AXES_FAILURE_LIMIT within the window."""
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    keys = [f"password-reset:ip:{ip or '-'}", f"password-reset:email:{digest}"]
    window = _window_seconds()
    allowed = True
    for key in keys:
        cache.add(key, 0, timeout=window)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=window)
            count = 1
        allowed = allowed and count <= settings.AXES_FAILURE_LIMIT
    return allowed


class QueuedPasswordResetForm(PasswordResetForm):
    """Django's form, but its mail goes through the task queue after commit: the worker
    makes the link (only the user's id is queued)."""

    def save(self, *, use_https=False, request=None, domain_override=None, **kwargs):
        scheme = "https" if use_https else "http"
        host = domain_override or (request.get_host() if request is not None else "localhost")
        base_url = f"{scheme}://{host}"
        for user in self.get_users(self.cleaned_data["email"]):
            user_id = user.pk
            transaction.on_commit(
                lambda user_id=user_id: password_reset_mail.enqueue(user_id, base_url)
            )


class PasswordResetView(auth_views.PasswordResetView):
    form_class = QueuedPasswordResetForm
    success_url = reverse_lazy("password_reset_done")

    def post(self, request, *args, **kwargs):
        email = str(request.POST.get("email", ""))[:254]
        if not password_reset_allowed(ip=client_ip(request), email=email):
            return render(request, LIMITED_TEMPLATE, status=429)
        return super().post(request, *args, **kwargs)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    success_url = reverse_lazy("password_reset_complete")
