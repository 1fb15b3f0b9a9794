"""The address a request came from, for the login lockout (django-axes).

Behind N trusted proxies each one appends the address it saw to X-Forwarded-For, so the
N-th entry from the right is the client as the outermost proxy saw it. Everything left
of it was written by the client and may be forged; with no proxy (N = 0) the header is
the client's own words and is ignored."""

from __future__ import annotations

import ipaddress

from django.conf import settings


def client_ip(request) -> str | None:
    remote = request.META.get("REMOTE_ADDR")
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    hops = [hop for hop in hops if hop]
    if not hops:
        return remote
    # Fewer entries than proxies: the request entered behind the outer ones, and every
    # entry present was still appended by a trusted proxy.
    candidate = hops[-min(count, len(hops))]
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        # A proxy writes addresses only; anything else is not to be stored or trusted.
        return remote
