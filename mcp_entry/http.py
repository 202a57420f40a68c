"""The streamable HTTP transport, hardened: loopback unless told otherwise, a bearer token and explicit
allowed roots before it may listen on another address, and the MCP SDK's DNS-rebinding protection
(Host and Origin headers checked against an allow-list) on every request to /mcp.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import socket

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from domain.errors import InvalidInput
from domain.settings import Settings

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server reachable from this machine only."""
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, host: str) -> None:
    """Refuse to listen beyond loopback without a token and explicitly allowed roots.

    Raises:
        InvalidInput: `host` is not loopback and CODESEARCH_HTTP_TOKEN or CODESEARCH_ALLOWED_ROOTS is unset.
    """
    if is_loopback(host):
        return
    missing = [name for name, value in (("CODESEARCH_HTTP_TOKEN", settings.http_token),
                                        ("CODESEARCH_ALLOWED_ROOTS", settings.allowed_roots)) if not value]
    if missing:
        raise InvalidInput(
            f"refusing to serve MCP on {host}, which other machines can reach, without {' and '.join(missing)} "
            "set: clients would need no credentials and could index any directory. Set them, or bind 127.0.0.1."
        )


def transport_security(settings: Settings, host: str) -> TransportSecuritySettings:
    """DNS-rebinding protection: loopback names, plus the configured (or bound) host names."""
    if settings.http_allowed_hosts:
        names = [h.strip() for h in settings.http_allowed_hosts.split(",") if h.strip()]
    elif host in ("0.0.0.0", "::", ""):
        names = [socket.gethostname(), socket.getfqdn()]
    else:
        names = [f"[{host}]" if ":" in host else host]
    hosts = sorted({*LOOPBACK_HOSTS, *names})
    allowed_hosts = [p for h in hosts for p in ((h,) if h.endswith(":*") or h.count(":") == 1 else (h, f"{h}:*"))]
    origins = [f"{scheme}://{h}" for scheme in ("http", "https") for h in allowed_hosts]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=allowed_hosts,
                                     allowed_origins=origins)


class BearerToken:
    """ASGI middleware: every HTTP request must carry `Authorization: Bearer <token>` (constant-time compare)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
            if not hmac.compare_digest(given, self.expected):
                body = json.dumps({"error": "missing or wrong bearer token"}).encode()
                await send({"type": "http.response.start", "status": 401, "headers": [
                    (b"content-type", b"application/json"), (b"www-authenticate", b'Bearer realm="codesearch"'),
                    (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def http_app(server: MCPServer, settings: Settings, host: str) -> ASGIApp:
    """The MCP endpoint at /mcp (and the server's custom routes, /metrics), with the checks above.

    Raises:
        InvalidInput: see `check_exposure`.
    """
    check_exposure(settings, host)
    app: ASGIApp = server.streamable_http_app(streamable_http_path="/mcp", host=host,
                                              transport_security=transport_security(settings, host))
    if settings.http_token is not None:
        app = BearerToken(app, settings.http_token.get_secret_value())
    return app


def serve(server: MCPServer, settings: Settings, host: str, port: int) -> None:
    """Run the HTTP transport until interrupted.

    Raises:
        InvalidInput: see `check_exposure`.
    """
    import uvicorn

    app = http_app(server, settings, host)
    uvicorn.run(app, host=host, port=port, log_level="warning")
