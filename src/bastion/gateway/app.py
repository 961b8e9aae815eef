"""The gateway's HTTP surface (KServe V1 and Open Inference Protocol V2) and ``build_app``.

GET  /healthz, /readyz                       no details to anyone
GET  /v1/models                              the models the caller may use
GET  /v1/models/{name}, /v2/models/{name}    metadata (read-metadata) or readiness (predict)
POST /v1/models/{name}:predict               {"instances": [[...], ...]} -> {"predictions": [...]}
POST /v2/models/{name}/infer                 V2 tensors in and out
GET  /admin/audit?limit=N                    recent audit records (read-audit)
GET  /admin/models/{name}/state              the model's runtime state (read-metadata or manage)
PUT  /admin/models/{name}/state              {"state": normal|throttle|block, "reason", "factor"} (manage)
GET  /metrics                                Prometheus counters (read-audit)
GET  /openapi.json                           OpenAPI 3.1, listing only the caller's models

``GatewayApp`` is one ASGI app: it runs the protective steps of ``middleware`` in order, then the route, and
writes one audit record per request whatever happened. Routes are matched on the raw path (a fixed table,
first full match wins; a path that matches with another method is a 405, nothing else a 404).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from bastion.gateway.access import Action, Principal, Role
from bastion.gateway.audit import utc_now
from bastion.gateway.config import GatewayConfig, ModelSpec, Output, OutputMode
from bastion.gateway.detection import Level
from bastion.gateway.errors import HttpError, LimiterUnavailable
from bastion.gateway.hardening import harden
from bastion.gateway.limits import Charge, Quota
from bastion.gateway.middleware import (
    PUBLIC_PATHS,
    Receive,
    RequestContext,
    Scope,
    Send,
    authenticate,
    context,
    framing,
    limiter_down,
    log,
    network_policy,
    read_body,
    send_error,
    send_reply,
)
from bastion.gateway.model_state import ModelState, parse_change
from bastion.gateway.models import ServedModel
from bastion.gateway.runtime import Gateway
from bastion.gateway.upstream import UpstreamModel
from bastion.gateway.wire import dumps, loads_strict

THROTTLE_FACTOR = 10.0
_RESTRICTIVENESS = {OutputMode.LABELS: 2, OutputMode.TOP_K: 1, OutputMode.PROBABILITIES: 0}


@dataclass
class Call:
    """What a route sees: the gateway, the request's context, the caller, the path parameters, the body."""

    gw: Gateway
    ctx: RequestContext
    principal: Principal
    scope: Scope
    receive: Receive
    params: dict[str, str]
    deadline: float

    async def json(self) -> Any:
        ctype = self.ctx.headers.get(b"content-type", (b"",))[0].split(b";")[0].strip().lower()
        if ctype != b"application/json":
            raise HttpError(415, "unsupported-media-type", "send application/json")
        limit = self.gw.config.server.max_body_bytes
        return loads_strict(await read_body(self.receive, limit=limit, deadline=self.deadline))

    def query(self, name: str, default: str) -> str:
        """The last value of query parameter ``name`` (as Starlette reads it), or ``default``."""
        pairs = parse_qsl(self.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        values = [v for k, v in pairs if k == name]
        return values[-1] if values else default


@dataclass(frozen=True)
class Reply:
    body: bytes
    status: int = 200
    media_type: bytes = b"application/json"


def _json(payload: Any, status: int = 200) -> Reply:
    return Reply(dumps(payload), status)


def _model(call: Call, action: Action) -> ServedModel:
    gw, ctx, principal = call.gw, call.ctx, call.principal
    name = call.params["name"]
    spec = gw.specs.get(name)
    if spec is None:
        raise HttpError(404, "unknown-model", "no such model")
    ctx.model, ctx.model_version = spec.name, spec.version
    allowed = principal.may(action, spec.environment, spec.name)
    if not allowed and action is Action.READ_METADATA:
        allowed = principal.may(Action.PREDICT, spec.environment, spec.name)
    if not allowed:
        raise HttpError(403, "forbidden", f"not allowed to {action.value} this model in {spec.environment}")
    model = gw.models.get(name)
    if model is None:
        raise HttpError(503, "model-refused", "this model failed its load-time checks and is not served")
    return model


async def healthz(call: Call) -> Reply:
    return _json({"status": "ok"})


async def readyz(call: Call) -> Reply:
    """Ready: every model loaded, the limits' store answering, and each upstream model ready upstream."""
    gw = call.gw
    ready = not gw.refused and bool(gw.models) and await gw.limiter.ping()
    upstreams = [m.impl for m in gw.models.values() if isinstance(m.impl, UpstreamModel)]
    if ready and upstreams:
        ready = all(await asyncio.gather(*(u.ready() for u in upstreams)))
    return _json({"status": "ready" if ready else "unavailable"}, 200 if ready else 503)


def _may_use(principal: Principal, environment: str, name: str) -> bool:
    return principal.may(Action.PREDICT, environment, name) or principal.may(
        Action.READ_METADATA, environment, name
    )


def _visible(call: Call) -> list[str]:
    """The served models the caller may predict with or read the metadata of, sorted."""
    return [
        name
        for name, model in sorted(call.gw.models.items())
        if _may_use(call.principal, model.spec.environment, name)
    ]


async def list_models(call: Call) -> Reply:
    return _json({"models": _visible(call)})


async def openapi(call: Call) -> Reply:
    """Only for callers whose roles may list at least one configured model (refused ones included)."""
    gw, principal = call.gw, call.principal
    if not any(_may_use(principal, spec.environment, spec.name) for spec in gw.config.models):
        raise HttpError(403, "forbidden", "no role that may list models is granted to this identity")
    from bastion.gateway.openapi import build_document

    return _json(build_document(models=_visible(call), environment=gw.config.server.environment))


async def model_metadata(call: Call) -> Reply:
    model = _model(call, Action.READ_METADATA)
    if call.principal.may(Action.READ_METADATA, model.spec.environment, model.spec.name):
        return _json({**model.metadata(), "ready": True})
    return _json({"name": model.spec.name, "ready": True})


def _output_for(model: ServedModel, roles: frozenset[Role]) -> Output:
    overrides = [model.spec.output_by_role[r] for r in roles if r in model.spec.output_by_role]
    if not overrides:
        return model.spec.output
    return max(overrides, key=lambda o: _RESTRICTIVENESS[o.mode])


async def _serve(call: Call, rows: Any) -> tuple[ServedModel, list[Any], Level]:
    """Authorise, validate, charge, predict, watch, harden: the one path every prediction takes."""
    gw, ctx, principal = call.gw, call.ctx, call.principal
    model = _model(call, Action.PREDICT)
    name = model.spec.name
    # the model's state (set by an operator or the monitor's gateway action) and the caller's level
    state, level = await gw.standing(name, principal.caller)
    if state.state is ModelState.BLOCK:
        raise HttpError(503, "model-suspended", f"this model is suspended: {state.reason}")
    throttled = state.state is ModelState.THROTTLE
    detector = gw.detectors[name]
    if level is Level.BLOCK:
        raise HttpError(403, "blocked", "this identity is blocked from this model (suspected extraction)")
    x = model.validate(rows, gw.config.server.max_rows)
    factor = max(THROTTLE_FACTOR if level >= Level.THROTTLE else 1.0, state.factor if throttled else 1.0)
    n = float(x.shape[0]) * factor
    limits = gw.config.limits
    decision = await gw.charge(
        [
            Charge(f"id:{principal.caller}", limits.identity, n),
            Charge(f"idm:{principal.caller}:{name}", limits.identity_model, n),
        ],
        Quota(f"day:{principal.caller}", limits.daily_rows, int(x.shape[0])),
    )
    if not decision.allowed:
        code = "quota-exceeded" if decision.reason == "daily quota" else "rate-limited"
        raise HttpError(
            429,
            code,
            f"{decision.reason} exceeded for this identity",
            headers={"Retry-After": decision.retry_after_header},
        )
    prediction = await model.infer(x, ctx.request_id)
    events = detector.observe(principal.caller, name, x)
    if events and detector.shared is not None:
        try:
            events = await detector.escalate(events)
        except LimiterUnavailable as exc:
            gw.extraction_events(events, ctx)  # the local steps are still recorded
            raise limiter_down(exc) from None
    gw.extraction_events(events, ctx)
    level = max(level, detector.level(principal.caller, name))
    if level is Level.BLOCK:
        raise HttpError(403, "blocked", "this identity is blocked from this model (suspected extraction)")
    output = _output_for(model, principal.roles_for(model.spec.environment, name))
    outputs = harden(
        prediction,
        x,
        output,
        labels_only=throttled or level >= Level.LABELS_ONLY,
        secret=gw.secret,
        model=name,
        caller=principal.caller,
    )
    reasons = [f"detection-{level.name.lower()}"] if level > Level.NORMAL else []
    if throttled:
        reasons.append("model-throttled")
    ctx.reason = " ".join(reasons)
    writer = gw.captures.get(name)
    if writer is not None:
        writer.add(ctx.request_time, ctx.request_id, x, prediction)
    return model, outputs, level


async def predict_v1(call: Call) -> Reply:
    body = await call.json()
    if not isinstance(body, dict) or body.keys() - {"instances", "parameters"} or "instances" not in body:
        raise HttpError(422, "bad-request-body", 'expected {"instances": [[...], ...]}')
    _, outputs, _ = await _serve(call, body["instances"])
    return _json({"predictions": outputs})


_V2_TYPES = frozenset({"FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8"})


async def infer_v2(call: Call) -> Reply:
    body = await call.json()
    if not isinstance(body, dict) or body.keys() - {"id", "inputs", "parameters", "outputs"}:
        raise HttpError(422, "bad-request-body", "unexpected fields in the inference request")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise HttpError(422, "bad-request-body", "expected exactly one input tensor")
    tensor = inputs[0]
    if (
        tensor.keys() - {"name", "shape", "datatype", "data", "parameters"}
        or tensor.get("datatype") not in _V2_TYPES
    ):
        raise HttpError(422, "bad-tensor", f"datatype must be one of {sorted(_V2_TYPES)}")
    shape, data = tensor.get("shape"), tensor.get("data")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(s, int) and s > 0 for s in shape)
        or not isinstance(data, list)
    ):
        raise HttpError(422, "bad-shape", "shape must be [rows, features] and data a list")
    flat = data if all(not isinstance(v, list) for v in data) else None
    if flat is None or len(flat) != shape[0] * shape[1]:
        raise HttpError(422, "bad-shape", "data must be flat, row-major, rows × features numbers")
    if shape[0] > call.gw.config.server.max_rows:
        raise HttpError(413, "too-many-rows", "too many rows")
    rows = [flat[i * shape[1] : (i + 1) * shape[1]] for i in range(shape[0])]
    model, outputs, _ = await _serve(call, rows)
    request_id = body.get("id") if isinstance(body.get("id"), str) else call.ctx.request_id
    if outputs and isinstance(outputs[0], list) and not isinstance(outputs[0][0], dict):
        out = {
            "name": "probabilities",
            "shape": [len(outputs), len(outputs[0])],
            "datatype": "FP64",
            "data": [v for row in outputs for v in row],
        }
    elif outputs and isinstance(outputs[0], list):
        out = {
            "name": "top_k",
            "shape": [len(outputs)],
            "datatype": "BYTES",
            "data": [dumps(r).decode() for r in outputs],
        }
    else:
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in outputs)
        out = {
            "name": "predict",
            "shape": [len(outputs)],
            "datatype": "FP64" if numeric else "BYTES",
            "data": outputs if numeric else [str(v) for v in outputs],
        }
    return _json(
        {
            "model_name": model.spec.name,
            "model_version": model.spec.version,
            "id": request_id,
            "outputs": [out],
        }
    )


def _require(call: Call, action: Action) -> None:
    if not call.principal.may(action, call.gw.config.server.environment):
        raise HttpError(403, "forbidden", f"{action.value} is not granted in this environment")


async def admin_audit(call: Call) -> Reply:
    _require(call, Action.READ_AUDIT)
    text = call.query("limit", "100")
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise HttpError(422, "bad-limit", "limit must be 1..1000")
    return _json({"records": call.gw.audit.recent(int(text))})


def _state_spec(call: Call, *actions: Action) -> ModelSpec:
    """The configured model named in the path (loaded or refused), if the caller holds one of ``actions``."""
    spec = call.gw.specs.get(call.params["name"])
    if spec is None:
        raise HttpError(404, "unknown-model", "no such model")
    call.ctx.model, call.ctx.model_version = spec.name, spec.version
    if not any(call.principal.may(a, spec.environment, spec.name) for a in actions):
        wanted = " or ".join(a.value for a in actions)
        raise HttpError(403, "forbidden", f"not allowed to {wanted} this model in {spec.environment}")
    return spec


async def get_model_state(call: Call) -> Reply:
    spec = _state_spec(call, Action.READ_METADATA, Action.MANAGE)
    record = await call.gw.model_state(spec.name)
    return _json({"model": spec.name, **record.to_json()})


async def put_model_state(call: Call) -> Reply:
    """Suspend, throttle or restore a model (``manage``); every change is a security audit record."""
    gw, ctx = call.gw, call.ctx
    spec = _state_spec(call, Action.MANAGE)
    record = parse_change(await call.json(), by=call.principal.caller, at=utc_now())
    previous = await gw.set_model_state(spec.name, record)
    gw.security_event(
        "model-state",
        ctx,
        detail=f"{previous.state.value} -> {record.state.value}",
        model=spec.name,
        by=record.by,
        reason=record.reason,
        factor=record.factor,
        **{"from": previous.state.value, "to": record.state.value},
    )
    return _json({"model": spec.name, **record.to_json(), "previous": previous.state.value})


async def metrics(call: Call) -> Reply:
    _require(call, Action.READ_AUDIT)
    gw = call.gw
    lines = ["# TYPE bastion_gateway_total counter"]
    lines += [f"bastion_gateway_total{{{label}}} {value}" for label, value in sorted(gw.counters.items())]
    lines += ["# TYPE bastion_gateway_models gauge", f"bastion_gateway_models {len(gw.models)}"]
    batched = [
        (name, m.batcher) for name, m in sorted(gw.models.items(), key=lambda item: item[0]) if m.batcher
    ]
    if batched:  # requests / calls is the mean batch: how much concurrent load shares the model's calls
        lines.append("# TYPE bastion_gateway_model_calls_total counter")
        lines += [f'bastion_gateway_model_calls_total{{model="{name}"}} {b.calls}' for name, b in batched]
    return Reply(("\n".join(lines) + "\n").encode(), media_type=b"text/plain; version=0.0.4")


Handler = Callable[[Call], Awaitable[Reply]]


@dataclass(frozen=True)
class Route:
    template: str  # ``{name}`` matches one path segment
    methods: frozenset[str]
    handler: Handler
    pattern: re.Pattern[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        regex = "^" + re.escape(self.template).replace(re.escape("{name}"), "(?P<name>[^/]+)") + "$"
        object.__setattr__(self, "pattern", re.compile(regex))


def _get(template: str, handler: Handler) -> Route:
    return Route(template, frozenset({"GET", "HEAD"}), handler)


def _post(template: str, handler: Handler) -> Route:
    return Route(template, frozenset({"POST"}), handler)


ROUTES = (
    _get("/healthz", healthz),
    _get("/readyz", readyz),
    _get("/v1/models", list_models),
    _post("/v1/models/{name}:predict", predict_v1),
    _get("/v1/models/{name}", model_metadata),
    _post("/v2/models/{name}/infer", infer_v2),
    _get("/v2/models/{name}", model_metadata),
    _get("/admin/audit", admin_audit),
    _get("/admin/models/{name}/state", get_model_state),
    Route("/admin/models/{name}/state", frozenset({"PUT"}), put_model_state),
    _get("/metrics", metrics),
    _get("/openapi.json", openapi),
)


_MATCHED: dict[tuple[str, str], tuple[Handler, dict[str, str]]] = {}  # memo of matches (paths repeat)


def route(path: str, method: str) -> tuple[Handler, dict[str, str]]:
    """The first route matching ``path`` and ``method``; 405 (with ``Allow``) or 404 otherwise."""
    known = _MATCHED.get((path, method))
    if known is not None:
        return known[0], dict(known[1])
    handler, params = _match(path, method)
    if len(_MATCHED) >= 4096:  # ``{name}`` matches any segment: bounded, whatever clients send
        _MATCHED.clear()
    _MATCHED[(path, method)] = (handler, params)
    return handler, dict(params)


def _match(path: str, method: str) -> tuple[Handler, dict[str, str]]:
    allowed: set[str] = set()
    for candidate in ROUTES:
        match = candidate.pattern.match(path)
        if match is None:
            continue
        if method in candidate.methods:
            return candidate.handler, match.groupdict()
        allowed |= candidate.methods
    if allowed:
        raise HttpError(
            405, "method-not-allowed", "method not allowed", headers={"Allow": ", ".join(sorted(allowed))}
        )
    raise HttpError(404, "not-found", "not found")


class GatewayApp:
    """The gateway as one ASGI app; ``gw`` is its runtime state."""

    def __init__(self, gateway: Gateway) -> None:
        self.gw = gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def close(self) -> None:
        """The runtime: flushes the audit log, closes the stores."""
        await self.gw.close()

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        gw = self.gw
        ctx = context(scope, gw)
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")  # routes match raw
        admitted: str | None = None
        try:
            await network_policy(ctx, gw, credentials=path not in PUBLIC_PATHS)
            framing(scope, ctx, gw)
            deadline = asyncio.get_running_loop().time() + gw.config.server.read_timeout_s
            principal = Gateway.ANONYMOUS
            if path not in PUBLIC_PATHS:
                principal = await authenticate(scope, ctx, gw)
                if not gw.concurrency.enter(principal.caller):
                    raise HttpError(
                        429,
                        "too-many-concurrent",
                        "too many requests in flight",
                        headers={"Retry-After": "1"},
                    )
                admitted = principal.caller
            handler, params = route(path, scope["method"])
            reply = await handler(Call(gw, ctx, principal, scope, receive, params, deadline))
            await send_reply(send, ctx, reply.status, reply.body, reply.media_type)
        except HttpError as exc:
            await send_error(send, ctx, exc)
        except Exception as exc:  # noqa: BLE001 - the HTTP boundary: no stack trace ever reaches a client
            log.error("internal error on %s %s: %s", ctx.method, ctx.path, type(exc).__name__)
            ctx.reason = "internal-error"
            if not ctx.status:
                await send_error(send, ctx, HttpError(500, "internal-error", "internal error"))
        finally:
            if admitted is not None:
                gw.concurrency.leave(admitted)
            if path not in PUBLIC_PATHS:
                gw.record_access(ctx)


def build_app(config: GatewayConfig, *, gateway: Gateway | None = None) -> GatewayApp:
    """The gateway as one ASGI app: the protective steps, the routes, the audit record."""
    return GatewayApp(gateway or Gateway(config))
