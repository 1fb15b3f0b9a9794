"""Responses that carry balances must not be kept by browsers or proxies."""

from __future__ import annotations

from django.shortcuts import render
from django.utils.cache import add_never_cache_headers

NO_STORE_PREFIXES = ("/api/",)


class NoStoreMiddleware:
    """Cache-Control: no-store on every JSON API answer (balances, usage, errors alike).
    The portal's pages and exports set it themselves (offices.views.PortalMixin)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if request.path.startswith(NO_STORE_PREFIXES):
            add_never_cache_headers(response)
        return response


class PortalNotFoundMiddleware:
    """With DEBUG on (the demo), Django answers a 404 with its technical page, which lists
    every URL pattern; the demo shows the portal's own page instead. JSON answers (the
    API's 404s) are left as they are. Only in config.settings.local."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code == 404
            and not response.streaming
            and response.get("Content-Type", "").startswith("text/html")
        ):
            return render(request, "404.html", status=404)
        return response
