"""Kubernetes admission decisions: AdmissionReview v1 in, AdmissionReview v1 out (pure, no HTTP here).

Pods, Deployments, StatefulSets and Jobs are admitted only when every container image is pinned by
digest (``name@sha256:...``) and every image digest and every model digest named in the
``bastion.dev/models`` annotation (comma-separated ``sha256:...``) has a *signed*, trusted, recent
policy verdict that allows it for the namespace's environment. The newest such verdict counts: a
later failure revokes an earlier pass. In audit-only mode the request is allowed and the reasons
are returned as warnings. Anything malformed is denied with a readable reason.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bastion.policy.document import Environment
from bastion.policy.projection import VERDICT_PREDICATE_TYPE

if TYPE_CHECKING:
    from bastion.evidence.keys import Keyring
    from bastion.evidence.store import EvidenceStore

MODEL_ANNOTATION = "bastion.dev/models"
MAX_REVIEW_BYTES = 1024 * 1024
_PINNED = re.compile(r"^[^@\s]+@sha256:([0-9a-f]{64})$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "Job", "ReplicaSet", "DaemonSet"}

VerdictLookup = Callable[[str, Environment], tuple[bool, str]]
"""(digest, environment) -> (allowed, reason)."""


@dataclass(frozen=True)
class AdmissionConfig:
    default_environment: Environment = Environment.PROD
    namespaces: dict[str, Environment] = field(default_factory=dict)
    exempt_namespaces: frozenset[str] = frozenset({"kube-system"})
    audit_only: bool = False
    max_verdict_age_days: int = 30

    def environment_of(self, namespace: str) -> Environment:
        return self.namespaces.get(namespace, self.default_environment)


def load_config(path: Any) -> AdmissionConfig:
    """Read the webhook settings (YAML): environments per namespace, exemptions, audit-only, verdict age."""
    import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs

    from bastion.policy.errors import PolicyError

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"cannot read the admission config: {exc}", path=path) from None
    allowed = {"default_environment", "namespaces", "exempt_namespaces", "audit_only", "max_verdict_age_days"}
    if not isinstance(data, dict) or set(data) - allowed:
        raise PolicyError(
            f"unknown fields {sorted(set(data) - allowed)} (allowed: {sorted(allowed)})", path=path
        )
    try:
        return AdmissionConfig(
            Environment(data.get("default_environment", "prod")),
            {str(k): Environment(v) for k, v in (data.get("namespaces") or {}).items()},
            frozenset(str(n) for n in data.get("exempt_namespaces", ["kube-system"])),
            bool(data.get("audit_only", False)),
            int(data.get("max_verdict_age_days", 30)),
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise PolicyError(f"invalid admission config: {exc}", path=path) from None


class ReviewError(ValueError):
    """The request is not a usable AdmissionReview (answered with HTTP 400)."""


def review(body: bytes, config: AdmissionConfig, lookup: VerdictLookup) -> dict[str, Any]:
    """Decide one AdmissionReview request; returns the AdmissionReview response object."""
    if len(body) > MAX_REVIEW_BYTES:
        raise ReviewError(f"request larger than {MAX_REVIEW_BYTES} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReviewError(f"not JSON: {exc}") from None
    if (
        not isinstance(doc, dict)
        or doc.get("kind") != "AdmissionReview"
        or doc.get("apiVersion") != "admission.k8s.io/v1"
    ):
        raise ReviewError("not an admission.k8s.io/v1 AdmissionReview")
    request = doc.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("uid"), str):
        raise ReviewError("the AdmissionReview has no request.uid")
    uid = request["uid"]
    namespace = str(request.get("namespace") or "default")
    if namespace in config.exempt_namespaces or request.get("operation") == "DELETE":
        return _response(uid, True, [], [])
    env = config.environment_of(namespace)
    try:
        reasons = _reasons(request, env, lookup)
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        reasons = [f"malformed object: {exc.__class__.__name__}"]
    if config.audit_only:
        return _response(uid, True, [], [f"[audit-only] {r}" for r in reasons])
    return _response(uid, not reasons, reasons, [])


def _reasons(request: dict[str, Any], env: Environment, lookup: VerdictLookup) -> list[str]:
    obj = request.get("object")
    if not isinstance(obj, dict):
        return ["the request carries no object"]
    kind = obj.get("kind") or (request.get("kind") or {}).get("kind")
    metadata = obj.get("metadata") or {}
    if kind == "Pod":
        spec, annotations = obj.get("spec"), dict(metadata.get("annotations") or {})
    elif kind in _POD_TEMPLATE_KINDS:
        template = (obj.get("spec") or {}).get("template") or {}
        spec = template.get("spec")
        annotations = {
            **(metadata.get("annotations") or {}),
            **((template.get("metadata") or {}).get("annotations") or {}),
        }
    else:
        return [f"kind {kind!r} is not one Bastion admits (Pod, Deployment, StatefulSet, Job)"]
    if not isinstance(spec, dict):
        return [f"{kind} has no pod spec"]
    reasons: list[str] = []
    containers = [
        c for key in ("initContainers", "containers", "ephemeralContainers") for c in spec.get(key) or []
    ]
    if not containers:
        reasons.append("the pod has no containers")
    for container in containers:
        image = str(container.get("image", ""))
        name = container.get("name", "?")
        pinned = _PINNED.match(image)
        if not pinned:
            reasons.append(f"container {name}: image {image!r} is not pinned by digest (use name@sha256:...)")
            continue
        allowed, why = lookup("sha256:" + pinned.group(1), env)
        if not allowed:
            reasons.append(f"container {name}: image {image}: {why}")
    for model in [m.strip() for m in str(annotations.get(MODEL_ANNOTATION, "")).split(",") if m.strip()]:
        if not _DIGEST.match(model):
            reasons.append(f"annotation {MODEL_ANNOTATION}: {model!r} is not a sha256:<hex> digest")
            continue
        allowed, why = lookup(model, env)
        if not allowed:
            reasons.append(f"model {model}: {why}")
    return reasons


def _response(uid: str, allowed: bool, reasons: list[str], warnings: list[str]) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        response["status"] = {"code": 403, "reason": "Forbidden", "message": "bastion: " + "; ".join(reasons)}
    if warnings:
        response["warnings"] = warnings[:20]
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


class StoreVerdicts:
    """Verdict lookup over the evidence store: signed by a trusted, usable key; newest for the environment."""

    def __init__(self, store: EvidenceStore, keyring: Keyring, max_age_days: int = 30) -> None:
        self.store = store
        self.keyring = keyring
        self.max_age = dt.timedelta(days=max_age_days)

    def __call__(self, digest: str, env: Environment) -> tuple[bool, str]:
        from bastion.evidence.bundle import parse_bundles
        from bastion.evidence.errors import BundleFormatError
        from bastion.evidence.statement import Statement

        now = dt.datetime.now(dt.UTC)
        trusted = self.keyring.entries()
        found: list[tuple[str, dict[str, Any]]] = []
        for record in self.store.query(digest=digest, predicate_type=VERDICT_PREDICATE_TYPE):
            try:
                (bundle,) = parse_bundles(self.store.bundle_bytes(record.id), source=record.id[:16])
                if not authentic(bundle, trusted, now):
                    continue
                statement = Statement.from_bytes(bundle.envelope.payload)
            except (BundleFormatError, ValueError):
                continue
            if not any(hmac.compare_digest(str(d), digest) for s in statement.subjects for d in s.digests):
                continue
            predicate = statement.predicate
            if predicate.get("environment") == env.value and isinstance(predicate.get("evaluated_at"), str):
                found.append((predicate["evaluated_at"], predicate))
        if not found:
            return False, f"no signed policy verdict for {env.value}"
        evaluated_at, newest = max(found, key=lambda item: item[0])
        try:
            moment = dt.datetime.fromisoformat(evaluated_at.replace("Z", "+00:00"))
        except ValueError:
            return False, "the newest verdict has an unreadable date"
        if now - moment > self.max_age:
            return (
                False,
                f"the newest {env.value} verdict ({evaluated_at}) is older than {self.max_age.days} days",
            )
        outcome = newest.get("outcome")
        policy = (newest.get("policy") or {}).get("name")
        if outcome not in ("pass", "warn"):
            failed = [r.get("rule") for r in newest.get("rules", []) if r.get("outcome") in ("fail", "error")]
            return False, f"policy {policy} said {outcome} ({', '.join(map(str, failed)) or 'evidence'})"
        return True, f"policy {policy} said {outcome} at {evaluated_at}"


def authentic(bundle: Any, trusted: tuple[Any, ...], now: dt.datetime) -> bool:
    from bastion.evidence.dsse import IN_TOTO_PAYLOAD_TYPE
    from bastion.evidence.keys import KeyStatus, load_public_key
    from bastion.evidence.signers import verify_signature

    envelope = bundle.envelope
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE:
        return False
    data = envelope.signed_bytes()
    for info in trusted:
        if info.status is KeyStatus.DISABLED or info.expired(now):
            continue
        key = load_public_key(info.public_pem.encode(), source=f"trusted key {info.name!r}")
        if any(verify_signature(key, s.sig, data) for s in envelope.signatures):
            return True
    return False
