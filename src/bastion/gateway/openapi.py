"""The OpenAPI 3.1 description of the gateway, built per caller.

Served at ``GET /openapi.json`` only to identities that may list models (a role granting ``predict`` or
``read-metadata`` on at least one configured model); the ``name`` parameter enumerates only the models that
caller may use, so the document reveals nothing the caller could not already list with ``GET /v1/models``.
"""

from __future__ import annotations

from typing import Any

ERRORS: dict[int, str] = {
    400: "Malformed: bad JSON, duplicate keys, NaN/Infinity, encoded paths, credentials in the query",
    401: "No credential, or an invalid, expired or revoked one",
    403: "Forbidden: not granted, blocked address, or identity blocked for suspected extraction",
    404: "Unknown model or path",
    405: "Method not allowed",
    408: "Request body too slow",
    411: "Length required",
    413: "Body or row count too large",
    415: "Not application/json",
    422: "Wrong shape, type or range",
    429: "Rate limit, daily quota, concurrency cap or failed-login throttle (see Retry-After)",
    502: "The upstream model server failed or answered badly (proxied models)",
    503: "Model refused at load, suspended (model-suspended), or the limits store is unreachable",
    504: "The upstream model server did not answer in time (proxied models)",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _responses(ok: dict[str, Any], *codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {"200": ok}
    for code in codes:
        out[str(code)] = {"$ref": f"#/components/responses/E{code}"}
    return out


_AUTH = (400, 401, 403, 429)
_BODY = (*_AUTH, 404, 408, 411, 413, 415, 422, 502, 503, 504)

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "message", "status", "request_id"],
        "properties": {
            "error": {"type": "string", "description": "a stable code, e.g. rate-limited"},
            "message": {"type": "string"},
            "status": {"type": "integer"},
            "request_id": {"type": "string"},
        },
    },
    "Row": {"type": "array", "items": {"type": "number"}},
    "PredictRequest": {
        "type": "object",
        "required": ["instances"],
        "additionalProperties": False,
        "properties": {
            "instances": {"type": "array", "minItems": 1, "items": _ref("Row")},
            "parameters": {"type": "object"},
        },
    },
    "PredictResponse": {
        "type": "object",
        "required": ["predictions"],
        "properties": {
            "predictions": {
                "type": "array",
                "description": "class probabilities in class order, [{label, probability}] lists (top-k), "
                "or labels",
            }
        },
    },
    "Tensor": {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string"},
            "shape": {"type": "array", "items": {"type": "integer", "minimum": 1}},
            "datatype": {"type": "string"},
            "data": {"type": "array"},
            "parameters": {"type": "object"},
        },
    },
    "InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "inputs": {"type": "array", "minItems": 1, "maxItems": 1, "items": _ref("Tensor")},
            "outputs": {"type": "array"},
            "parameters": {"type": "object"},
        },
    },
    "InferResponse": {
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "outputs": {"type": "array", "items": _ref("Tensor")},
        },
    },
    "ModelList": {
        "type": "object",
        "required": ["models"],
        "properties": {"models": {"type": "array", "items": {"type": "string"}}},
    },
    "ModelMetadata": {
        "type": "object",
        "required": ["name", "ready"],
        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
        "additionalProperties": True,
    },
    "AuditRecords": {
        "type": "object",
        "required": ["records"],
        "properties": {
            "records": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["kind", "seq", "prev_hash", "hash"],
                    "properties": {
                        "kind": {"enum": ["access", "security"]},
                        "seq": {"type": "integer"},
                        "prev_hash": {"type": "string"},
                        "hash": {"type": "string"},
                    },
                },
            }
        },
    },
    "ModelStateChange": {
        "type": "object",
        "required": ["state", "reason"],
        "additionalProperties": False,
        "properties": {
            "state": {"enum": ["normal", "throttle", "block"]},
            "reason": {"type": "string", "minLength": 1, "maxLength": 200},
            "factor": {
                "type": "number",
                "minimum": 1,
                "maximum": 1000,
                "default": 10,
                "description": "throttle only: the token cost of each prediction row",
            },
        },
    },
    "ModelState": {
        "type": "object",
        "required": ["model", "state", "reason", "factor", "by", "at"],
        "properties": {
            "model": {"type": "string"},
            "state": {"enum": ["normal", "throttle", "block"]},
            "reason": {"type": "string"},
            "factor": {"type": "number"},
            "by": {"type": "string", "description": "the identity that set it (empty: never set)"},
            "at": {"type": "string"},
            "previous": {"enum": ["normal", "throttle", "block"], "description": "PUT only"},
        },
    },
    "Status": {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}},
}


def _name_parameter(models: list[str]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if models:
        schema["enum"] = models
    return {"name": "name", "in": "path", "required": True, "schema": schema, "description": "a model"}


def _operation(summary: str, tag: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "tags": [tag], "responses": responses, **extra}


def build_document(*, models: list[str], environment: str) -> dict[str, Any]:
    """The document for a caller who may use ``models`` (sorted names)."""
    name = [_name_parameter(models)]
    public: dict[str, Any] = {"security": []}
    metadata = _operation(
        "Model metadata (read-metadata), or readiness only (predict)",
        "models",
        _responses(_json(_ref("ModelMetadata"), "metadata"), *_AUTH, 404, 503),
        parameters=name,
    )
    paths: dict[str, Any] = {
        "/healthz": {
            "get": _operation("Liveness", "operations", {"200": _json(_ref("Status"), "alive")}, **public)
        },
        "/readyz": {
            "get": _operation(
                "Readiness (no details)",
                "operations",
                {"200": _json(_ref("Status"), "ready"), "503": _json(_ref("Status"), "unavailable")},
                **public,
            )
        },
        "/v1/models": {
            "get": _operation(
                "The models the caller may use",
                "models",
                _responses(_json(_ref("ModelList"), "model names"), *_AUTH),
            )
        },
        "/v1/models/{name}": {"get": {**metadata, "operationId": "v1ModelMetadata"}},
        "/v2/models/{name}": {"get": {**metadata, "operationId": "v2ModelMetadata"}},
        "/v1/models/{name}:predict": {
            "post": _operation(
                "KServe V1 prediction (predict)",
                "inference",
                _responses(_json(_ref("PredictResponse"), "predictions"), *_BODY),
                parameters=name,
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("PredictRequest")}},
                },
            )
        },
        "/v2/models/{name}/infer": {
            "post": _operation(
                "Open Inference Protocol (V2): one FP/INT tensor [rows, features], row-major flat data",
                "inference",
                _responses(_json(_ref("InferResponse"), "output tensor"), *_BODY),
                parameters=name,
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("InferRequest")}},
                },
            )
        },
        "/admin/audit": {
            "get": _operation(
                f"Recent audit records (read-audit in {environment})",
                "operations",
                _responses(_json(_ref("AuditRecords"), "records, oldest first"), *_AUTH, 422),
                parameters=[
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                    }
                ],
            )
        },
        "/admin/models/{name}/state": {
            "get": _operation(
                "The model's runtime state (read-metadata or manage)",
                "operations",
                _responses(_json(_ref("ModelState"), "state"), *_AUTH, 404, 503),
                parameters=name,
            ),
            "put": _operation(
                "Suspend (block), throttle or restore (normal) the model (manage); audited",
                "operations",
                _responses(
                    _json(_ref("ModelState"), "the new state"), *_AUTH, 404, 408, 411, 413, 415, 422, 503
                ),
                parameters=name,
                requestBody={
                    "required": True,
                    "content": {"application/json": {"schema": _ref("ModelStateChange")}},
                },
            ),
        },
        "/metrics": {
            "get": _operation(
                "Prometheus counters (read-audit)",
                "operations",
                _responses(
                    {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    *_AUTH,
                ),
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Bastion gateway",
            "version": "1",
            "description": f"Environment {environment}. Models you may use: {', '.join(models) or 'none'}.",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A Bastion API key (bst_...) or a JWT from the configured issuer",
                }
            },
            "schemas": _SCHEMAS,
            "responses": {f"E{code}": _json(_ref("Error"), text) for code, text in ERRORS.items()},
        },
    }
