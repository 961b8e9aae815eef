"""The gateway's runtime state: loaded models, credentials, limits, detectors and the audit log.

Built once from a ``GatewayConfig``; the ASGI layers and routes read it. Models that fail their load-time
checks are refused (answered 503, with the reason in the log and in the audit trail), never served.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.gateway.access import Grant, Principal
from bastion.gateway.audit import AuditLog, AuditSink, utc_now
from bastion.gateway.config import Audit, GatewayConfig, LimitBackend, Subject
from bastion.gateway.credentials import ApiKeyStore, JwtVerifier, looks_like_jwt
from bastion.gateway.detection import Event, ExtractionDetector, Level, share_levels
from bastion.gateway.errors import LimiterUnavailable, ModelRefused
from bastion.gateway.limits import Charge, ConcurrencyGate, Decision, Limiter, Quota, make_limiter
from bastion.gateway.middleware import RequestContext, limiter_down
from bastion.gateway.model_state import RedisStates, StateRecord, make_states
from bastion.gateway.models import ServedModel, load_model

if TYPE_CHECKING:
    from bastion.gateway.capture import CaptureWriter
    from bastion.gateway.redis_pipe import RedisPipe

log = logging.getLogger("bastion.gateway")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _grants(subject: Subject | None) -> tuple[Grant, ...]:
    if subject is None:
        return ()
    return tuple(Grant(b.role, b.environment, frozenset(b.models)) for b in subject.bindings)


def open_redis(config: GatewayConfig) -> RedisPipe | None:
    """The connection to the limits' Redis, when the limits live there or a model shares detection levels."""
    limits = config.limits
    shared = any(m.detection.enabled and m.detection.shared for m in config.models)
    if limits.backend is not LimitBackend.REDIS and not shared:
        return None
    from bastion.gateway.redis_pipe import RedisPipe

    return RedisPipe(
        limits.redis_url, timeout_s=limits.redis_timeout_s, store="Redis (limits, states, levels)"
    )


def open_audit(config: Audit) -> AuditSink:
    """The configured audit sink; the SQL one (and SQLAlchemy) is imported only when selected."""
    url = config.database_url()
    if url is None:
        return AuditLog(config.path, fsync=config.fsync)
    from bastion.gateway.audit_sql import SqlAuditLog

    return SqlAuditLog(url, config.table)


class Gateway:
    ANONYMOUS = Principal("-", "-", "none", "", ())  # the caller of the public paths: grants nothing

    def __init__(self, config: GatewayConfig, *, limiter: Limiter | None = None) -> None:
        self.config = config
        self.specs = {spec.name: spec for spec in config.models}
        self._grants: dict[tuple[str, str], tuple[Grant, ...]] = {}
        self._ip_verdicts: dict[str, bool] = {}
        server = config.server
        self.trusted_proxies: tuple[Network, ...] = tuple(
            ipaddress.ip_network(c, strict=False) for c in server.trusted_proxies
        )
        self.allow: tuple[Network, ...] = tuple(ipaddress.ip_network(c, strict=False) for c in server.allow)
        self.deny: tuple[Network, ...] = tuple(ipaddress.ip_network(c, strict=False) for c in server.deny)
        self.redis = open_redis(config)  # one connection for every store that lives in Redis
        self.limiter = limiter or make_limiter(config.limits, self.redis)
        self.states = make_states(config.limits, self.redis)  # normal / throttle / block per model
        self.concurrency = ConcurrencyGate(config.limits.concurrent)
        self.keys = ApiKeyStore(config.auth.api_keys_file) if config.auth.api_keys_file else None
        self.jwt = JwtVerifier(config.auth.jwt, config.auth.groups_claim) if config.auth.jwt else None
        self.audit = open_audit(config.audit)
        secret = os.environ.get(server.secret_env, "")
        if len(secret) < 32:
            log.warning("$%s unset or short: output noise is keyed per process", server.secret_env)
            secret = secrets.token_hex(32)
        self.secret = secret.encode()
        self.models: dict[str, ServedModel] = {}
        self.refused: dict[str, str] = {}
        self.detectors: dict[str, ExtractionDetector] = {}
        self.counters: dict[str, int] = {}
        self.captures: dict[str, CaptureWriter] = {}
        for spec in config.models:
            try:
                model = load_model(spec)
            except ModelRefused as exc:
                self.refused[spec.name] = exc.message
                log.error("model refused: %s", exc.message)
                self.audit.append(
                    {
                        "kind": "security",
                        "event": "model-refused",
                        "model": spec.name,
                        "modelVersion": spec.version,
                        "reason": exc.message,
                        "requestTime": utc_now(),
                    }
                )
                continue
            self.models[spec.name] = model
            if spec.capture is not None:
                from bastion.gateway.capture import CaptureWriter, feature_names

                names = feature_names(spec.feature_names, model.n_features)
                self.captures[spec.name] = CaptureWriter(spec.capture, spec.name, spec.version, names)
            det = spec.detection
            mean = np.asarray(det.mean) if det.mean else None
            std = np.asarray(det.std) if det.std else None
            self.detectors[spec.name] = ExtractionDetector(det, mean=mean, std=std, reference=model.reference)
            self.audit.append(
                {
                    "kind": "security",
                    "event": "model-loaded",
                    "model": spec.name,
                    "modelVersion": spec.version,
                    "sha256": model.sha256,
                    **({"upstream": spec.upstream.url} if spec.upstream else {}),
                    "requestTime": utc_now(),
                }
            )

        share_levels(self.detectors, config.limits, self.redis)  # detection levels in Redis where asked

    # -- network ------------------------------------------------------------------------------------------
    def ip_blocked(self, ip: str) -> bool:
        """Deny list, then allow list (empty: everyone). Memoised per address: the lists never change."""
        verdict = self._ip_verdicts.get(ip)
        if verdict is None:
            address = ipaddress.ip_address(ip)
            verdict = any(address in net for net in self.deny) or bool(
                self.allow and not any(address in net for net in self.allow)
            )
            if len(self._ip_verdicts) >= 65_536:
                self._ip_verdicts.clear()
            self._ip_verdicts[ip] = verdict
        return verdict

    # -- identities ---------------------------------------------------------------------------------------
    def grants(self, kind: str, name: str) -> tuple[Grant, ...]:
        """The bindings of identity or group ``name`` (``kind``: "identity" or "group"), built once."""
        key = (kind, name)
        found = self._grants.get(key)
        if found is None:
            subjects = self.config.identities if kind == "identity" else self.config.groups
            found = _grants(subjects.get(name))
            if name in subjects:  # only configured names are kept: the cache cannot grow without bound
                self._grants[key] = found
        return found

    def authenticate_certificate(self, subject: str) -> Principal | None:
        """The identity ``auth.client_certificates`` maps a verified client certificate's subject to."""
        identity = self.config.auth.client_certificates.get(subject)
        if identity is None:
            return None
        return Principal(identity, identity, "mtls", subject[:128], self.grants("identity", identity))

    async def authenticate(self, token: str) -> Principal | None:
        if looks_like_jwt(token):
            if self.jwt is None:
                return None
            await self.jwt.prepare(token)  # a JWKS URL is fetched here, never on the event loop's thread
            claims = self.jwt.verify(token)
            if claims is None:
                return None
            grants = self.grants("identity", claims.subject)
            for group in claims.groups:
                grants += self.grants("group", group)
            return Principal(claims.subject, claims.subject, "jwt", claims.key_id, grants)
        if self.keys is None:
            return None
        record = self.keys.authenticate(token)
        if record is None:
            return None
        grants = self.grants("identity", record.identity)
        return Principal(record.identity, record.identity, "api-key", record.id, grants)

    # -- limits --------------------------------------------------------------------------------------------
    async def charge(
        self, charges: Sequence[Charge], quota: Quota | None = None, *, dry_run: bool = False
    ) -> Decision:
        try:
            return await self.limiter.charge(charges, quota, dry_run=dry_run)
        except LimiterUnavailable as exc:
            raise limiter_down(exc) from None

    async def model_state(self, model: str) -> StateRecord:
        """The model's runtime state; a store that cannot answer refuses the request (503)."""
        try:
            return await self.states.get(model)
        except LimiterUnavailable as exc:
            raise limiter_down(exc) from None

    async def standing(self, model: str, caller: str) -> tuple[StateRecord, Level]:
        """The model's state and the caller's detection level on it, in one Redis read (``MGET``) when both
        live there; a store that cannot answer refuses the request (503)."""
        detector = self.detectors[model]
        shared = detector.shared
        local = detector.level(caller, model)
        try:
            if isinstance(self.states, RedisStates) and shared is not None and self.redis is not None:
                raw_state, raw_level = await self.redis.command(
                    "MGET", self.states.key(model), shared.key(caller, model)
                )
                return RedisStates.parse(raw_state), max(local, shared.parse(raw_level))
            state = await self.states.get(model)
            if shared is None or local is Level.BLOCK:
                return state, local
            return state, max(local, await shared.get(caller, model))
        except LimiterUnavailable as exc:
            raise limiter_down(exc) from None

    async def set_model_state(self, model: str, record: StateRecord) -> StateRecord:
        """Set the model's runtime state; the state it replaced."""
        try:
            return await self.states.swap(model, record)
        except LimiterUnavailable as exc:
            raise limiter_down(exc) from None

    # -- audit ---------------------------------------------------------------------------------------------
    def record_access(self, ctx: RequestContext) -> None:
        decision = "allow" if ctx.status < 400 else ("error" if ctx.reason == "internal-error" else "deny")
        self.count(f'status="{ctx.status}"')
        self.audit.append(
            {
                "kind": "access",
                "requestId": ctx.request_id,
                "ip": ctx.ip,
                "caller": ctx.caller,
                "user": ctx.user,
                "requestTime": ctx.request_time,
                "httpMethod": ctx.method,
                "resourcePath": ctx.path,
                "status": ctx.status,
                "protocol": ctx.protocol,
                "responseLength": ctx.response_length,
                "model": ctx.model,
                "modelVersion": ctx.model_version,
                "decision": decision,
                "reason": ctx.reason,
                "latencyMs": round((time.perf_counter() - ctx.started) * 1000, 3),
            }
        )

    def security_event(self, event: str, ctx: RequestContext, *, detail: str = "", **extra: Any) -> None:
        self.count(f'event="{event}"')
        log.warning("security event %s caller=%s ip=%s %s", event, ctx.caller, ctx.ip, detail)
        self.audit.append(
            {
                "kind": "security",
                "event": event,
                "requestId": ctx.request_id,
                "ip": ctx.ip,
                "caller": ctx.caller,
                "requestTime": utc_now(),
                "detail": detail,
                **extra,
            }
        )

    def extraction_events(self, events: list[Event], ctx: RequestContext) -> None:
        for e in events:
            self.security_event(
                "suspected-extraction",
                ctx,
                detail=f"level {e.level.name}",
                model=e.model,
                level=e.level.name.lower(),
                signals=list(e.signals),
                statistic=round(e.statistic, 4),
                queries=e.queries,
            )

    def count(self, label: str) -> None:
        self.counters[label] = self.counters.get(label, 0) + 1

    async def close(self) -> None:
        from bastion.gateway.upstream import UpstreamModel

        for model in self.models.values():
            if isinstance(model.impl, UpstreamModel):
                await model.impl.close()
        for writer in self.captures.values():
            writer.close()  # graceful shutdown writes the buffered captured rows
        await self.limiter.close()
        await self.states.close()
        if self.redis is not None:
            await self.redis.close()
        self.audit.close()
