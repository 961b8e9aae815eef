"""The gateway's ASGI layers, each an ASGI app wrapping an ASGI app, outermost first:

    RequestContext   request id, client IP (trusted proxies only), JSON errors, one audit record per request
    NetworkPolicy    IP/CIDR deny and allow lists, then the pre-authentication per-IP bucket
    Framing          raw-path checks, Content-Length + Transfer-Encoding smuggling, 411/413 from the headers,
                     and a ``receive`` that enforces the size cap and the read deadline while the body arrives
    Authenticate     ``Authorization: Bearer`` API key or JWT, failed-login throttling, concurrency cap

Refusals are raised as ``HttpError`` and rendered by ``RequestContext`` (or by the app's handler when raised
inside a route), so every refusal is a JSON body and an audit record.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bastion.gateway.audit import utc_now
from bastion.gateway.errors import HttpError, LimiterUnavailable
from bastion.gateway.limits import Charge
from bastion.gateway.wire import error_body

if TYPE_CHECKING:
    from bastion.gateway.runtime import Gateway

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("bastion.gateway")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
CTX = "bastion.ctx"
PRINCIPAL = "bastion.principal"
SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'none'"),
]


@dataclass
class RequestContext:
    request_id: str
    ip: str
    method: str
    path: str
    protocol: str
    started: float
    request_time: str
    caller: str = "-"
    user: str = "-"
    model: str | None = None
    model_version: str | None = None
    reason: str = ""
    status: int = 0
    response_length: int = 0


def _header(scope: Scope, name: bytes) -> list[bytes]:
    return [v for k, v in scope.get("headers", []) if k.lower() == name]


def client_ip(scope: Scope, trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> str:
    """The TCP peer, unless the peer is a trusted proxy: then the right-most untrusted X-Forwarded-For hop."""
    peer = scope.get("client")
    if not peer:
        return "0.0.0.0"  # noqa: S104 - a placeholder address for audit records, not a bind address
    try:
        ip = ipaddress.ip_address(peer[0])
    except ValueError:
        return "0.0.0.0"  # noqa: S104 - same
    if not any(ip in net for net in trusted):
        return str(ip)
    hops = [h.strip() for v in _header(scope, b"x-forwarded-for") for h in v.decode("latin-1").split(",")]
    for hop in reversed(hops):
        try:
            addr = ipaddress.ip_address(hop)
        except ValueError:
            return str(ip)
        if not any(addr in net for net in trusted):
            return str(addr)
    return str(ip)


async def send_error(send: Send, ctx: RequestContext, exc: HttpError) -> None:
    body = error_body(exc.status, exc.code, exc.message, ctx.request_id)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()]
    if exc.close:
        headers.append((b"connection", b"close"))
    ctx.reason = ctx.reason or exc.code
    await send({"type": "http.response.start", "status": exc.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _GatewayMiddleware:
    """An ASGI app wrapping an ASGI app: non-HTTP traffic passes through, HTTP goes to ``handle``."""

    def __init__(self, app: ASGIApp, gateway: Gateway) -> None:
        self.app = app
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class RequestContextMiddleware(_GatewayMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        supplied = b"".join(_header(scope, b"x-request-id")[:1]).decode("latin-1")
        raw_path = scope.get("raw_path") or scope["path"].encode()
        ctx = RequestContext(
            request_id=supplied if REQUEST_ID.match(supplied) else uuid.uuid4().hex,
            ip=client_ip(scope, self.gw.trusted_proxies),
            method=scope["method"],
            path=raw_path.decode("latin-1")[:256],
            protocol=f"HTTP/{scope.get('http_version', '1.1')}",
            started=time.perf_counter(),
            request_time=utc_now(),
        )
        scope[CTX] = ctx
        started = False

        async def wrapped(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                ctx.status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                headers += [(b"x-request-id", ctx.request_id.encode()), *SECURITY_HEADERS]
                message = {**message, "headers": headers}
            elif message["type"] == "http.response.body":
                ctx.response_length += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        except HttpError as exc:
            if not started:
                await send_error(wrapped, ctx, exc)
        except Exception as exc:  # noqa: BLE001 - the HTTP boundary: no stack trace ever reaches a client
            log.error("internal error on %s %s: %s", ctx.method, ctx.path, type(exc).__name__)
            ctx.reason = "internal-error"
            if not started:
                await send_error(wrapped, ctx, HttpError(500, "internal-error", "internal error"))
        finally:
            if scope["path"] not in PUBLIC_PATHS:
                self.gw.record_access(ctx)


class NetworkPolicyMiddleware(_GatewayMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx: RequestContext = scope[CTX]
        ip = ipaddress.ip_address(ctx.ip)
        if any(ip in net for net in self.gw.deny) or (
            self.gw.allow and not any(ip in net for net in self.gw.allow)
        ):
            raise HttpError(403, "ip-blocked", "requests from this address are not accepted")
        decision = await self.gw.charge([Charge(f"ip:{ctx.ip}", self.gw.config.limits.ip, 1.0)])
        if not decision.allowed:
            raise HttpError(
                429,
                "rate-limited",
                "too many requests from this address",
                headers={"Retry-After": decision.retry_after_header},
            )
        await self.app(scope, receive, send)


class FramingMiddleware(_GatewayMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") or b""
        if b"%" in raw or b"\\" in raw or b"/." in raw or b"//" in raw:
            raise HttpError(400, "bad-path", "encoded, dotted or doubled path segments are not accepted")
        lengths = _header(scope, b"content-length")
        chunked = _header(scope, b"transfer-encoding")
        if lengths and chunked:
            raise HttpError(
                400, "ambiguous-framing", "Content-Length and Transfer-Encoding together", close=True
            )
        limit = self.gw.config.server.max_body_bytes
        if len(lengths) > 1:
            raise HttpError(400, "ambiguous-framing", "several Content-Length headers", close=True)
        if lengths:
            text = lengths[0].decode("latin-1")
            if not text.isdigit() or len(text) > 18:
                raise HttpError(400, "bad-content-length", "Content-Length is not a number", close=True)
            if int(text) > limit:
                raise HttpError(413, "body-too-large", f"body larger than {limit} bytes", close=True)
        elif scope["method"] in BODY_METHODS and not chunked:
            raise HttpError(411, "length-required", "Content-Length is required")
        deadline = time.monotonic() + self.gw.config.server.read_timeout_s
        received = 0

        async def guarded() -> Message:
            nonlocal received
            remaining = deadline - time.monotonic()
            try:
                async with asyncio.timeout(max(remaining, 0.001)):
                    message = await receive()
            except TimeoutError:
                raise HttpError(
                    408, "read-timeout", "the request body arrived too slowly", close=True
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HttpError(413, "body-too-large", f"body larger than {limit} bytes", close=True)
            return message

        await self.app(scope, guarded, send)


class AuthenticateMiddleware(_GatewayMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        ctx: RequestContext = scope[CTX]
        query = scope.get("query_string", b"").lower()
        if any(word in query for word in (b"api_key", b"apikey", b"access_token", b"token=", b"key=")):
            raise HttpError(400, "credentials-in-query", "send credentials only in the Authorization header")
        fail_key = Charge(f"authfail:{ctx.ip}", self.gw.config.limits.failed_auth, 1.0)
        precheck = await self.gw.charge([fail_key], dry_run=True)
        if not precheck.allowed:
            raise HttpError(
                429,
                "auth-throttled",
                "too many failed logins from this address",
                headers={"Retry-After": precheck.retry_after_header},
            )
        values = _header(scope, b"authorization")
        token = ""
        if len(values) == 1:
            scheme, _, rest = values[0].decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                token = rest.strip()
        principal = self.gw.authenticate(token) if token else None
        if principal is None:
            await self.gw.charge([fail_key])
            if not (await self.gw.charge([fail_key], dry_run=True)).allowed:
                # the failure that empties the bucket is reported once; later attempts stop at the pre-check
                self.gw.security_event("auth-brute-force", ctx, detail="failed-login bucket exhausted")
            ctx.reason = "missing-credentials" if not token else "invalid-credentials"
            raise HttpError(
                401,
                ctx.reason,
                "a valid bearer credential is required",
                headers={"WWW-Authenticate": 'Bearer realm="bastion"'},
            )
        ctx.caller, ctx.user = principal.caller, principal.user
        scope[PRINCIPAL] = principal
        if not self.gw.concurrency.enter(principal.caller):
            raise HttpError(
                429, "too-many-concurrent", "too many requests in flight", headers={"Retry-After": "1"}
            )
        try:
            await self.app(scope, receive, send)
        finally:
            self.gw.concurrency.leave(principal.caller)


def limiter_down(exc: LimiterUnavailable) -> HttpError:
    log.error("refusing request: %s", exc.message)
    return HttpError(
        503, "limits-unavailable", "rate limits cannot be checked; try later", headers={"Retry-After": "5"}
    )
