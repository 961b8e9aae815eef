"""The protective steps every request takes before a route runs, in this order (``app.GatewayApp`` runs them
as one ASGI layer: one call per request instead of a stack of wrappers):

    context          request id, client IP (trusted proxies only), the audit record's fields
    network_policy   IP/CIDR deny and allow lists, then the pre-authentication per-IP bucket and, for paths
                     that need credentials, whether the address's failed-login bucket allows a try (one call)
    framing          raw-path checks, Content-Length + Transfer-Encoding smuggling, 411/413 from the headers
                     (``read_body`` enforces the size cap again, and the read deadline, as the body arrives)
    authenticate     ``Authorization: Bearer`` API key or JWT; a failure drains the failed-login bucket

Refusals are raised as ``HttpError`` and rendered by the app, so every refusal is a JSON body and an audit
record.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import secrets
import time
import types
from collections.abc import Awaitable, Callable, Generator, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bastion.gateway.audit import utc_now
from bastion.gateway.errors import HttpError, LimiterUnavailable
from bastion.gateway.limits import Charge
from bastion.gateway.wire import error_body

if TYPE_CHECKING:
    from bastion.gateway.access import Principal
    from bastion.gateway.runtime import Gateway

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

log = logging.getLogger("bastion.gateway")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
CLIENT_SUBJECT = "bastion.client_subject"  # scope key: the verified client certificate's subject (mTLS)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_CREDENTIAL_WORDS = (b"api_key", b"apikey", b"access_token", b"token=", b"key=")
SECURITY_HEADERS = [
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"content-security-policy", b"default-src 'none'"),
]


Headers = dict[bytes, list[bytes]]


@dataclass
class RequestContext:
    headers: Headers  # lower-case name -> every value, in order (read once; never audited)
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


def read_headers(scope: Scope) -> Headers:
    """Every header, by lower-case name, values in order: one pass over the request's headers."""
    headers: Headers = {}
    for key, value in scope["headers"]:
        name = key.lower()
        if name in headers:
            headers[name].append(value)
        else:
            headers[name] = [value]
    return headers


def client_ip(scope: Scope, headers: Headers, trusted: tuple[Network, ...]) -> str:
    """The TCP peer, unless the peer is a trusted proxy: then the right-most untrusted X-Forwarded-For hop."""
    peer = scope.get("client")
    if not peer:
        return "0.0.0.0"  # noqa: S104 - a placeholder address for audit records, not a bind address
    if not trusted:  # the common case: no proxy to believe, the peer is the client
        return _canonical_ip(peer[0])
    try:
        ip = ipaddress.ip_address(peer[0])
    except ValueError:
        return "0.0.0.0"  # noqa: S104 - same
    if not any(ip in net for net in trusted):
        return str(ip)
    hops = [h.strip() for v in headers.get(b"x-forwarded-for", ()) for h in v.decode("latin-1").split(",")]
    for hop in reversed(hops):
        try:
            addr = ipaddress.ip_address(hop)
        except ValueError:
            return str(ip)
        if not any(addr in net for net in trusted):
            return str(addr)
    return str(ip)


_CANONICAL: dict[str, str] = {}


def _canonical_ip(text: str) -> str:
    """``text`` as ``ipaddress`` writes it, or the placeholder; memoised (peers repeat, parsing does not)."""
    known = _CANONICAL.get(text)
    if known is None:
        try:
            known = str(ipaddress.ip_address(text))
        except ValueError:
            known = "0.0.0.0"  # noqa: S104 - a placeholder address for audit records, not a bind address
        if len(_CANONICAL) >= 65_536:
            _CANONICAL.clear()
        _CANONICAL[text] = known
    return known


def context(scope: Scope, gw: Gateway) -> RequestContext:
    headers = read_headers(scope)
    supplied = headers.get(b"x-request-id", (b"",))[0].decode("latin-1")
    raw_path = scope.get("raw_path") or scope["path"].encode()
    return RequestContext(
        headers=headers,
        request_id=supplied if REQUEST_ID.match(supplied) else secrets.token_hex(16),
        ip=client_ip(scope, headers, gw.trusted_proxies),
        method=scope["method"],
        path=raw_path.decode("latin-1")[:256],
        protocol=f"HTTP/{scope.get('http_version', '1.1')}",
        started=time.perf_counter(),
        request_time=utc_now(),
    )


async def network_policy(ctx: RequestContext, gw: Gateway, *, credentials: bool) -> None:
    """Deny and allow lists, then the address's bucket; for a request that will present ``credentials``,
    in the same charge, whether the address may still try to log in (its failed-login bucket not empty)."""
    if gw.ip_blocked(ctx.ip):
        raise HttpError(403, "ip-blocked", "requests from this address are not accepted")
    limits = gw.config.limits
    charges = [Charge(f"ip:{ctx.ip}", limits.ip, 1.0)]
    if credentials:
        charges.append(Charge(f"authfail:{ctx.ip}", limits.failed_auth, 0.0, need=1.0))
    decision = await gw.charge(charges)
    if decision.allowed:
        return
    retry = {"Retry-After": decision.retry_after_header}
    if decision.refused_by == 1:
        raise HttpError(429, "auth-throttled", "too many failed logins from this address", headers=retry)
    raise HttpError(429, "rate-limited", "too many requests from this address", headers=retry)


def framing(scope: Scope, ctx: RequestContext, gw: Gateway) -> None:
    """Refuse ambiguous or oversized framing from the headers alone, before any body is read."""
    raw = scope.get("raw_path") or b""
    if b"%" in raw or b"\\" in raw or b"/." in raw or b"//" in raw:
        raise HttpError(400, "bad-path", "encoded, dotted or doubled path segments are not accepted")
    lengths = ctx.headers.get(b"content-length", [])
    chunked = ctx.headers.get(b"transfer-encoding", [])
    if lengths and chunked:
        raise HttpError(400, "ambiguous-framing", "Content-Length and Transfer-Encoding together", close=True)
    limit = gw.config.server.max_body_bytes
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


async def read_body(receive: Receive, *, limit: int, deadline: float) -> bytes:
    """The whole body, refused when it grows past ``limit`` (413) or is still arriving at ``deadline``
    (the event loop's clock; 408). Both close the connection."""
    chunks: list[bytes] = []
    received = 0
    try:
        while True:
            message = await _receive_by(receive, deadline)
            if message["type"] == "http.disconnect":
                raise HttpError(400, "client-disconnected", "the client went away", close=True)
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                raise HttpError(413, "body-too-large", f"body larger than {limit} bytes", close=True)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
    except TimeoutError:
        raise HttpError(408, "read-timeout", "the request body arrived too slowly", close=True) from None


async def _receive_by(receive: Receive, deadline: float) -> Message:
    """The next message, or ``TimeoutError`` if the client has not sent it by ``deadline``.

    The deadline is armed only when the message is not there yet: ``receive`` is stepped once by hand, and a
    message already received (the usual case for a small body, sent with its headers) comes back without a
    timer. Otherwise the rest of that same call is awaited under ``asyncio.timeout_at``.
    """
    call = receive()
    try:
        pending = call.send(None)  # type: ignore[attr-defined]
    except StopIteration as done:
        message: Message = done.value
        return message
    async with asyncio.timeout_at(deadline):
        return await _resume(call, pending)  # type: ignore[no-any-return]


@types.coroutine
def _resume(call: Any, pending: Any) -> Generator[Any, Any, Any]:
    """Finish a coroutine that has been stepped once and is waiting on ``pending``: what it waits on is
    handed to the event loop, and what the loop sends or throws (a wake-up, a cancellation) is passed on."""
    while True:
        try:
            sent = yield pending
        except GeneratorExit:
            call.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - passed on to the coroutine, not handled here
            try:
                pending = call.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                pending = call.send(sent)
            except StopIteration as done:
                return done.value


async def authenticate(scope: Scope, ctx: RequestContext, gw: Gateway) -> Principal:
    query = scope.get("query_string", b"").lower()
    if query and any(word in query for word in _CREDENTIAL_WORDS):
        raise HttpError(400, "credentials-in-query", "send credentials only in the Authorization header")
    fail_key = Charge(f"authfail:{ctx.ip}", gw.config.limits.failed_auth, 1.0)
    values = ctx.headers.get(b"authorization", [])
    token = ""
    if len(values) == 1:
        scheme, _, rest = values[0].decode("latin-1").partition(" ")
        if scheme.lower() == "bearer":
            token = rest.strip()
    principal = await gw.authenticate(token) if token else None
    subject = scope.get(CLIENT_SUBJECT)
    if not token and subject is not None:  # no bearer credential: the verified client certificate speaks
        principal = gw.authenticate_certificate(subject)
    if principal is None:
        await gw.charge([fail_key])
        if not (await gw.charge([fail_key], dry_run=True)).allowed:
            # the failure that empties the bucket is reported once; later attempts stop at the pre-check
            gw.security_event("auth-brute-force", ctx, detail="failed-login bucket exhausted")
        ctx.reason = "missing-credentials" if not token else "invalid-credentials"
        raise HttpError(
            401,
            ctx.reason,
            "a valid bearer credential is required",
            headers={"WWW-Authenticate": 'Bearer realm="bastion"'},
        )
    ctx.caller, ctx.user = principal.caller, principal.user
    return principal


async def send_reply(
    send: Send,
    ctx: RequestContext,
    status: int,
    body: bytes,
    media_type: bytes = b"application/json",
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (b"content-type", media_type),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", ctx.request_id.encode()),
        *SECURITY_HEADERS,
    ]
    if extra:
        headers += extra
    ctx.status = status
    ctx.response_length = len(body)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, ctx: RequestContext, exc: HttpError) -> None:
    extra = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in exc.headers.items()]
    if exc.close:
        extra.append((b"connection", b"close"))
    ctx.reason = ctx.reason or exc.code
    await send_reply(
        send, ctx, exc.status, error_body(exc.status, exc.code, exc.message, ctx.request_id), extra=extra
    )


def limiter_down(exc: LimiterUnavailable) -> HttpError:
    log.error("refusing request: %s", exc.message)
    return HttpError(
        503, "limits-unavailable", "rate limits cannot be checked; try later", headers={"Retry-After": "5"}
    )
