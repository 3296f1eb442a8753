"""Safe by default: the server's settings, the rule that only loopback may listen without a token, the bearer
token (or the web page's cookie) on every route but /healthz, and a request body limit enforced while reading."""

from __future__ import annotations

import hmac
import ipaddress
import json
from dataclasses import dataclass

from ..errors import OptiplanError
from .paths import Roots

COOKIE = "optiplan_token"
OPEN_PATHS = ("/healthz", "/login")


@dataclass(frozen=True)
class Settings:
    roots: Roots
    token: str | None = None
    queue: str = "local"  # "local" (SQLite in the workdir + in-process pool) or a redis:// URL
    workers: int = 1
    allow_pickle: bool = False
    max_body_bytes: int = 1 << 20
    max_attempts: int = 1  # the embedded queue fails an interrupted job; Redis workers may retry it
    keep_jobs_days: float = 30.0  # ended jobs' records (not their outputs) are forgotten after this; 0: never


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise OptiplanError(f"refusing to listen on {host} without a token: anyone who reaches it could run jobs; "
                            "pass --token (or set OPTIPLAN_TOKEN), or keep the default --host 127.0.0.1")
    if token is not None and len(token) < 16:
        raise OptiplanError("the token is shorter than 16 characters; use a long random one, e.g. "
                            "python -c 'import secrets; print(secrets.token_urlsafe(32))'")


def host_allowed(token: str | None, host_header: str) -> bool:
    """Without a token the server listens on loopback only, and answers only requests addressed to a loopback name:
    a web page elsewhere whose domain resolves to 127.0.0.1 (DNS rebinding) cannot drive it from the browser."""
    if token:
        return True
    host = host_header.rsplit(":", 1)[0] if not host_header.endswith("]") else host_header
    if host_header.startswith("[") and "]" in host_header:
        host = host_header[: host_header.index("]") + 1]
    return is_loopback(host.strip().lower())


def authorized(token: str | None, headers: dict[str, str], cookies: dict[str, str]) -> bool:
    """With a token configured, the request carries it as `Authorization: Bearer ...` or the web page's cookie."""
    if not token:
        return True
    given = ""
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        given = auth[7:].strip()
    elif cookies.get(COOKIE):
        given = cookies[COOKIE]
    return hmac.compare_digest(given.encode(), token.encode())


SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
DEFAULT_PORTS = {"http": "80", "https": "443"}


def _authority(scheme: str, netloc: str) -> str:
    """host:port, lower case, with the scheme's default port written out (Host may omit it)."""
    netloc = netloc.strip().lower()
    host, _, port = netloc.rpartition(":") if not netloc.endswith("]") else (netloc, "", "")
    if not host or not port.isdigit():
        host, port = netloc, DEFAULT_PORTS.get(scheme, "")
    return f"{host}:{port}"


def cross_site(method: str, path: str, scheme: str, headers: dict[str, str]) -> tuple[int, str] | None:
    """Why a request that changes something is refused as cross-site (status, sentence), or None. Not left to a
    framework's defaults: a browser on another site may send a form or a 'simple' text/plain POST with the page's
    cookie; it cannot forge Origin or Sec-Fetch-Site, nor send application/json without a preflight this server
    never grants."""
    if method in SAFE_METHODS:
        return None
    if headers.get("sec-fetch-site", "").strip().lower() == "cross-site":
        return 403, "refused: a request from another site (Sec-Fetch-Site: cross-site) may not change anything here"
    origin = headers.get("origin")
    if origin is not None:
        from urllib.parse import urlsplit

        parts = urlsplit(origin.strip())
        if origin.strip().lower() == "null" or not parts.netloc or \
                _authority(parts.scheme, parts.netloc) != _authority(scheme, headers.get("host", "")):
            return 403, f"refused: a request from another origin ('{origin[:100]}') may not change anything here"
    if method == "POST" and path.startswith("/v1/"):
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            return 415, "send the body as JSON (Content-Type: application/json)"
    return None


def with_page_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Every answer: framed by this server's own pages only (no clickjacking of the job page), and kept by the
    browser alone, never by a shared cache (reports and jobs are behind the token); a route's own Cache-Control
    (the events stream's no-store) stays."""
    names = {k.lower() for k, _ in headers}
    extra = [(b"x-frame-options", b"SAMEORIGIN"), (b"content-security-policy", b"frame-ancestors 'self'"),
             (b"cache-control", b"private"), (b"x-content-type-options", b"nosniff")]
    return list(headers) + [(k, v) for k, v in extra if k not in names]


def body_too_large(max_bytes: int):
    """Raised while the body streams in; an HTTPException, so FastAPI passes it on as it is (413)."""
    from starlette.exceptions import HTTPException

    return HTTPException(413, f"the request body is over the limit of {max_bytes} bytes")


class BodyLimit:
    """ASGI middleware: a body over `max_bytes` (by Content-Length, or counted while it streams in) gets 413 and
    one JSON error before the route reads it."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and not length.strip().isdigit():
            return await self._refuse(send, 400, "the Content-Length header is not a number of bytes")
        if length is not None and int(length) > self.max_bytes:
            return await self._refuse(send)
        seen, started = 0, False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise body_too_large(self.max_bytes)
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        from starlette.exceptions import HTTPException

        try:
            await self.app(scope, limited_receive, tracking_send)
        except HTTPException as exc:  # raised by a route that read the body outside FastAPI's own handling
            if exc.status_code != 413 or started:
                raise
            await self._refuse(send)

    async def _refuse(self, send, status: int = 413, message: str | None = None):
        message = message or f"the request body is over the limit of {self.max_bytes} bytes"
        body = json.dumps({"error": message, "status": status}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
