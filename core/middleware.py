"""Responses that carry balances must not be kept by browsers or proxies."""

from __future__ import annotations

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
