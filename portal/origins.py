"""Which pages may open a WebSocket: exact origins, scheme and port included (docs/security.md).

A browser sends the page's origin with every WebSocket handshake and, unlike a fetch, no
same-origin rule stops a page of another site from opening one with the user's cookies. So
the socket is accepted only from the server's own origin (the scheme it is reached by and the
Host it is asked for, which must be one of ALLOWED_HOSTS) or an origin listed exactly in
CSRF_TRUSTED_ORIGINS. Channels' AllowedHostsOriginValidator compared host names only: a page
on http://127.0.0.1:9999 could open the socket of the portal on :8000.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

Origin = tuple[str, str, int]
DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origin(text: str) -> Origin | None:
    """`scheme://host[:port]` as (scheme, host, port), the port made explicit; None for
    anything else (a path, "null", another scheme, a malformed port)."""
    try:
        parts = urlsplit(text.strip().lower())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    if parts.query or parts.fragment or parts.username or parts.password:
        return None
    return parts.scheme, parts.hostname, port or DEFAULT_PORTS[parts.scheme]


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _is_secure(scope: dict[str, Any]) -> bool:
    """As Django's request.is_secure(): the scheme, or the proxy's header when configured."""
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, secure_value = proxy_header
        value = _header(scope, name.removeprefix("HTTP_").lower().replace("_", "-").encode())
        if value is not None:
            return value.split(",", 1)[0].strip() == secure_value
    return scope.get("scheme") in ("wss", "https")


def own_origin(scope: dict[str, Any]) -> Origin | None:
    """The origin the socket is reached at: None unless its Host is one of ALLOWED_HOSTS."""
    host = _header(scope, b"host")
    if not host:
        return None
    domain, port = split_domain_port(host.lower())
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    scheme = "https" if _is_secure(scope) else "http"
    try:
        return scheme, domain.strip("[]"), int(port) if port else DEFAULT_PORTS[scheme]
    except ValueError:
        return None


def origin_allowed(scope: dict[str, Any]) -> bool:
    origin = parse_origin(_header(scope, b"origin") or "")
    if origin is None:
        return False
    if origin == own_origin(scope):
        return True
    return origin in {parse_origin(trusted) for trusted in settings.CSRF_TRUSTED_ORIGINS}


class OriginValidator:
    """ASGI middleware for WebSockets: the handshake of a socket from any other origin is
    refused (403) before the session is even read."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
