"""The Bastion gateway: authenticated, authorised, rate-limited, audited model serving that watches for model
stealing. One ASGI app (the protective steps, a fixed route table, the audit record); see ``docs/gateway.md``.

    config       the YAML/JSON configuration, validated (unknown fields forbidden)
    credentials  API keys (hashed, constant-time) and JWT verification (allowlisted algorithms)
    access       roles → actions, grants scoped per environment
    limits       token buckets and daily quotas, in process or in Redis (atomic Lua; fails closed)
    audit        hash-chained JSON Lines records and their verification
    audit_sql    the same chain in a SQLite or PostgreSQL table (SQLAlchemy), and its verifier
    models       scan-gated model loading (scikit-learn joblib, bastion-linear JSON) and input validation
    upstream     models proxied to a KServe V1 / Open Inference Protocol V2 server
    capture      served rows as JSON Lines for the monitor
    detection    per-identity extraction / membership-inference signals, graded response
    hardening    labels only, top-k, rounding, deterministic noise
    model_state  a model's runtime state (normal / throttle / block), in process or in Redis
    middleware   the protective steps;  runtime  the state they share;  app  the one ASGI app and its routes
    openapi      the OpenAPI 3.1 document, built per caller
    server       uvicorn with TLS 1.2+ (optional mTLS) and a header deadline against slow clients

Importing this package imports nothing heavy; ``build_app`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bastion.gateway.app import GatewayApp
    from bastion.gateway.config import GatewayConfig

__all__ = ["build_app", "load_config"]


def build_app(config: GatewayConfig, **options: Any) -> GatewayApp:
    from bastion.gateway.app import build_app as _build

    return _build(config, **options)


def load_config(path: Any) -> GatewayConfig:
    from pathlib import Path

    from bastion.gateway.config import load_config as _load

    return _load(Path(path))
