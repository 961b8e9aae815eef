"""The gateway's HTTP surface (KServe V1 and Open Inference Protocol V2) and ``build_app``.

GET  /healthz, /readyz                       no details to anyone
GET  /v1/models                              the models the caller may use
GET  /v1/models/{name}, /v2/models/{name}    metadata (read-metadata) or readiness (predict)
POST /v1/models/{name}:predict               {"instances": [[...], ...]} -> {"predictions": [...]}
POST /v2/models/{name}/infer                 V2 tensors in and out
GET  /admin/audit?limit=N                    recent audit records (read-audit)
GET  /metrics                                Prometheus counters (read-audit)
GET  /openapi.json                           OpenAPI 3.1, listing only the caller's models
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bastion.gateway.access import Action, Principal, Role
from bastion.gateway.config import GatewayConfig, Output, OutputMode
from bastion.gateway.detection import Level
from bastion.gateway.errors import HttpError
from bastion.gateway.hardening import harden
from bastion.gateway.limits import Charge, Quota
from bastion.gateway.middleware import (
    CTX,
    PRINCIPAL,
    AuthenticateMiddleware,
    FramingMiddleware,
    NetworkPolicyMiddleware,
    RequestContext,
    RequestContextMiddleware,
)
from bastion.gateway.models import ServedModel
from bastion.gateway.runtime import Gateway
from bastion.gateway.wire import dumps, error_body, loads_strict

THROTTLE_FACTOR = 10.0
_RESTRICTIVENESS = {OutputMode.LABELS: 2, OutputMode.TOP_K: 1, OutputMode.PROBABILITIES: 0}


def _json(payload: Any, status: int = 200) -> Response:
    return Response(dumps(payload), status_code=status, media_type="application/json")


def _ctx(request: Request) -> RequestContext:
    ctx: RequestContext = request.scope[CTX]
    return ctx


def _principal(request: Request) -> Principal:
    principal: Principal = request.scope[PRINCIPAL]
    return principal


def _gw(request: Request) -> Gateway:
    gw: Gateway = request.app.state.gateway
    return gw


def _model(request: Request, action: Action) -> ServedModel:
    gw, ctx, principal = _gw(request), _ctx(request), _principal(request)
    name = request.path_params["name"]
    spec = next((m for m in gw.config.models if m.name == name), None)
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


async def healthz(request: Request) -> Response:
    return _json({"status": "ok"})


async def readyz(request: Request) -> Response:
    gw = _gw(request)
    ready = not gw.refused and bool(gw.models) and await gw.limiter.ping()
    return _json({"status": "ready" if ready else "unavailable"}, 200 if ready else 503)


def _may_use(principal: Principal, environment: str, name: str) -> bool:
    return principal.may(Action.PREDICT, environment, name) or principal.may(
        Action.READ_METADATA, environment, name
    )


def _visible(request: Request) -> list[str]:
    """The served models the caller may predict with or read the metadata of, sorted."""
    gw, principal = _gw(request), _principal(request)
    return [
        name for name, model in sorted(gw.models.items()) if _may_use(principal, model.spec.environment, name)
    ]


async def list_models(request: Request) -> Response:
    return _json({"models": _visible(request)})


async def openapi(request: Request) -> Response:
    """Only for callers whose roles may list at least one configured model (refused ones included)."""
    gw, principal = _gw(request), _principal(request)
    if not any(_may_use(principal, spec.environment, spec.name) for spec in gw.config.models):
        raise HttpError(403, "forbidden", "no role that may list models is granted to this identity")
    from bastion.gateway.openapi import build_document

    return _json(build_document(models=_visible(request), environment=gw.config.server.environment))


async def model_metadata(request: Request) -> Response:
    model = _model(request, Action.READ_METADATA)
    principal = _principal(request)
    if principal.may(Action.READ_METADATA, model.spec.environment, model.spec.name):
        return _json({**model.metadata(), "ready": True})
    return _json({"name": model.spec.name, "ready": True})


def _output_for(model: ServedModel, roles: frozenset[Role]) -> Output:
    overrides = [model.spec.output_by_role[r] for r in roles if r in model.spec.output_by_role]
    if not overrides:
        return model.spec.output
    return max(overrides, key=lambda o: _RESTRICTIVENESS[o.mode])


async def _body(request: Request) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise HttpError(415, "unsupported-media-type", "send application/json")
    return loads_strict(await request.body())


async def _serve(request: Request, rows: Any) -> tuple[ServedModel, list[Any], Level]:
    """Authorise, validate, charge, predict, watch, harden: the one path every prediction takes."""
    gw, ctx, principal = _gw(request), _ctx(request), _principal(request)
    model = _model(request, Action.PREDICT)
    name = model.spec.name
    detector = gw.detectors[name]
    level = detector.level(principal.caller, name)
    if level is Level.BLOCK:
        raise HttpError(403, "blocked", "this identity is blocked from this model (suspected extraction)")
    x = model.validate(rows, gw.config.server.max_rows)
    n = float(x.shape[0]) * (THROTTLE_FACTOR if level >= Level.THROTTLE else 1.0)
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
    prediction = model.predict(x)
    events = detector.observe(principal.caller, name, x)
    gw.extraction_events(events, ctx)
    level = detector.level(principal.caller, name)
    if level is Level.BLOCK:
        raise HttpError(403, "blocked", "this identity is blocked from this model (suspected extraction)")
    output = _output_for(model, principal.roles_for(model.spec.environment, name))
    outputs = harden(
        prediction,
        x,
        output,
        labels_only=level >= Level.LABELS_ONLY,
        secret=gw.secret,
        model=name,
        caller=principal.caller,
    )
    ctx.reason = f"detection-{level.name.lower()}" if level > Level.NORMAL else ""
    return model, outputs, level


async def predict_v1(request: Request) -> Response:
    body = await _body(request)
    if not isinstance(body, dict) or set(body) - {"instances", "parameters"} or "instances" not in body:
        raise HttpError(422, "bad-request-body", 'expected {"instances": [[...], ...]}')
    _, outputs, _ = await _serve(request, body["instances"])
    return _json({"predictions": outputs})


_V2_TYPES = frozenset({"FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8"})


async def infer_v2(request: Request) -> Response:
    body = await _body(request)
    if not isinstance(body, dict) or set(body) - {"id", "inputs", "parameters", "outputs"}:
        raise HttpError(422, "bad-request-body", "unexpected fields in the inference request")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise HttpError(422, "bad-request-body", "expected exactly one input tensor")
    tensor = inputs[0]
    if (
        set(tensor) - {"name", "shape", "datatype", "data", "parameters"}
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
    if shape[0] > _gw(request).config.server.max_rows:
        raise HttpError(413, "too-many-rows", "too many rows")
    rows = [flat[i * shape[1] : (i + 1) * shape[1]] for i in range(shape[0])]
    model, outputs, _ = await _serve(request, rows)
    request_id = body.get("id") if isinstance(body.get("id"), str) else _ctx(request).request_id
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


def _require(request: Request, action: Action) -> None:
    if not _principal(request).may(action, _gw(request).config.server.environment):
        raise HttpError(403, "forbidden", f"{action.value} is not granted in this environment")


async def admin_audit(request: Request) -> Response:
    _require(request, Action.READ_AUDIT)
    text = request.query_params.get("limit", "100")
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise HttpError(422, "bad-limit", "limit must be 1..1000")
    return _json({"records": _gw(request).audit.recent(int(text))})


async def metrics(request: Request) -> Response:
    _require(request, Action.READ_AUDIT)
    gw = _gw(request)
    lines = ["# TYPE bastion_gateway_total counter"]
    lines += [f"bastion_gateway_total{{{label}}} {value}" for label, value in sorted(gw.counters.items())]
    lines += ["# TYPE bastion_gateway_models gauge", f"bastion_gateway_models {len(gw.models)}"]
    return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpError)
    ctx = _ctx(request)
    ctx.reason = ctx.reason or exc.code
    headers = dict(exc.headers)
    if exc.close:
        headers["Connection"] = "close"
    return Response(
        error_body(exc.status, exc.code, exc.message, ctx.request_id),
        status_code=exc.status,
        media_type="application/json",
        headers=headers,
    )


async def _starlette_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "allow"}
    return await _http_error(
        request, HttpError(exc.status_code, code, code.replace("-", " "), headers=headers)
    )


def build_app(config: GatewayConfig, *, gateway: Gateway | None = None) -> RequestContextMiddleware:
    """The gateway as one ASGI app: the protective layers around a Starlette router."""
    gw = gateway or Gateway(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await gw.close()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/v1/models", list_models, methods=["GET"]),
        Route("/v1/models/{name}:predict", predict_v1, methods=["POST"]),
        Route("/v1/models/{name}", model_metadata, methods=["GET"]),
        Route("/v2/models/{name}/infer", infer_v2, methods=["POST"]),
        Route("/v2/models/{name}", model_metadata, methods=["GET"]),
        Route("/admin/audit", admin_audit, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    inner = Starlette(
        routes=routes,
        exception_handlers={HttpError: _http_error, HTTPException: _starlette_error},
        lifespan=lifespan,
    )
    inner.state.gateway = gw
    app = RequestContextMiddleware(
        NetworkPolicyMiddleware(FramingMiddleware(AuthenticateMiddleware(inner, gw), gw), gw), gw
    )
    return app
