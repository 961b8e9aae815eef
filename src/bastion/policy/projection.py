"""Project *verified* evidence into the compact document Rego rules read as ``input``.

Only statements of a ``VerificationResult`` whose status is ``verified`` are read; otherwise
``input.evidence`` is empty and every rule that needs evidence denies. The verification outcome
itself (status, problems, signers) is Bastion's own finding and is always projected, so the trust
rules can say *why* evidence was refused. Large collections are shaped as objects keyed by name
(``sbom.packages``: name -> version), which Rego handles with fast set algebra.

    {"environment": "prod",
     "subject": {"name": ..., "digest": "sha256:..."},
     "verification": {"status": "verified", "problems": [{"cause", "detail", "file"}]},
     "signers": [{"name", "key_id", "short_id", "status"}],
     "evidence": {"manifest": {"digest", "files"},
                  "scan": {"verdict", "findings", "problems", "scanned"},
                  "model": {"licenses", "datasets", "source"},
                  "sbom": {"packages": {name: version}},
                  "provenance": [{"builder", "isolated"}]},
     "advisories": {"digest": "sha256:..." | null, "matches": [{"package", "version", "id", ...}]}}
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.evidence.attest import SCAN_PREDICATE_TYPE
from bastion.evidence.bom import BOM_PREDICATE_TYPE
from bastion.evidence.manifest import PREDICATE_TYPE as MANIFEST_PREDICATE_TYPE
from bastion.evidence.verify import Status, VerificationResult

if TYPE_CHECKING:
    from bastion.evidence.statement import Statement
    from bastion.evidence.targets import Target
    from bastion.scanners.workspace.advisories import Snapshot

PROVENANCE_PREDICATE_TYPES = ("https://slsa.dev/provenance/v1",)
VERDICT_PREDICATE_TYPE = "https://github.com/bastion-mlsecops/bastion/policy-verdict/v1"
KIND_OF_PREDICATE = {
    MANIFEST_PREDICATE_TYPE: "manifest",
    BOM_PREDICATE_TYPE: "bom",
    SCAN_PREDICATE_TYPE: "scan",
    **{p: "provenance" for p in PROVENANCE_PREDICATE_TYPES},
}
_MAX_CARD = 1024 * 1024


@dataclass(frozen=True)
class EvidenceItem:
    """One verified statement a verdict may rest on: its kind and the SHA-256 of its signed payload."""

    kind: str
    predicate_type: str
    digest: str  # sha256:<hex of the canonical statement bytes>


@dataclass(frozen=True)
class Projection:
    document: dict[str, Any]
    evidence: tuple[EvidenceItem, ...]
    subject_name: str
    subject_digest: str


@dataclass(frozen=True)
class AdvisorySource:
    """The offline OSV snapshot used, identified by the SHA-256 of its file."""

    snapshot: Snapshot
    digest: str


def load_advisories(path: Path) -> AdvisorySource:
    from bastion.scanners.workspace.advisories import load_snapshot

    snapshot = load_snapshot(path)
    return AdvisorySource(snapshot, "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest())


def project(
    result: VerificationResult,
    environment: str,
    *,
    target: Target | None = None,
    advisories: AdvisorySource | None = None,
) -> Projection:
    verified = result.status is Status.VERIFIED
    statements = [s for s in result.statements if s.predicate_type != VERDICT_PREDICATE_TYPE]
    subject = statements[0].subjects[0] if statements else None
    subject_digest = str(subject.digests[0]) if subject else ""
    document: dict[str, Any] = {
        "environment": environment,
        "subject": {"name": subject.name if subject else result.target, "digest": subject_digest},
        "verification": {
            "status": result.status.value,
            "problems": [
                {"cause": p.cause.value, "detail": p.detail, "file": p.file} for p in result.problems
            ],
        },
        "signers": [
            {"name": s.name, "key_id": s.key_id, "short_id": s.short_id, "status": s.status.value}
            for s in result.signers
        ],
        "evidence": {},
        "advisories": {"digest": advisories.digest if advisories else None, "matches": []},
    }
    items: list[EvidenceItem] = []
    if not verified:  # unverified evidence never reaches a rule
        return Projection(document, (), document["subject"]["name"], subject_digest)
    evidence: dict[str, Any] = document["evidence"]
    for statement in statements:
        kind = KIND_OF_PREDICATE.get(statement.predicate_type)
        if kind is None:
            continue
        digest = "sha256:" + hashlib.sha256(statement.to_bytes()).hexdigest()
        items.append(EvidenceItem(kind, statement.predicate_type, digest))
        predicate = statement.predicate
        if kind == "manifest":
            evidence["manifest"] = {
                "digest": str(statement.subjects[0].digests[0]),
                "files": len(predicate.get("resources", [])),
            }
        elif kind == "scan":
            evidence["scan"] = _scan(predicate)
        elif kind == "bom":
            _bom(predicate, evidence)
        else:
            evidence.setdefault("provenance", []).append(_provenance(predicate))
    if "model" not in evidence and target is not None:
        card = _signed_model_card(target, statements)
        if card is not None:
            evidence["model"] = card
    if advisories is not None and "sbom" in evidence:
        document["advisories"]["matches"] = _matches(evidence["sbom"]["packages"], advisories.snapshot)
    return Projection(document, tuple(items), document["subject"]["name"], subject_digest)


def _scan(predicate: dict[str, Any]) -> dict[str, Any]:
    def pick(items: Any, keys: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{k: i.get(k) for k in keys} for i in items or [] if isinstance(i, dict)]

    return {
        "verdict": predicate.get("verdict"),
        "findings": pick(predicate.get("findings"), ("rule_id", "severity", "file", "member", "message")),
        "problems": pick(predicate.get("problems"), ("kind", "file", "message")),
        "scanned": pick(predicate.get("scanned"), ("file", "member", "format")),
    }


def _licenses(component: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for entry in component.get("licenses") or []:
        if isinstance(entry, dict):
            lic = entry.get("license") or {}
            value = lic.get("id") or lic.get("name") if isinstance(lic, dict) else None
            value = value or entry.get("expression")
            if isinstance(value, str):
                names.extend(p.strip() for p in re.split(r"\s+OR\s+", value) if p.strip())
    return names


def _bom(predicate: dict[str, Any], evidence: dict[str, Any]) -> None:
    main = (predicate.get("metadata") or {}).get("component") or {}
    components = [c for c in predicate.get("components") or [] if isinstance(c, dict)]
    if main.get("type") == "machine-learning-model":
        evidence["model"] = {
            "licenses": _licenses(main),
            "datasets": [
                {"name": c.get("name"), "licenses": _licenses(c)}
                for c in components
                if c.get("type") == "data"
            ],
            "source": "ml-bom",
        }
    libraries = [c for c in components if c.get("type") == "library"]
    if main.get("type") == "platform" or libraries:
        packages = evidence.setdefault("sbom", {"packages": {}})["packages"]
        for c in libraries:
            if isinstance(c.get("name"), str) and isinstance(c.get("version"), str):
                packages[re.sub(r"[-_.]+", "-", c["name"]).lower()] = c["version"]


def _provenance(predicate: dict[str, Any]) -> dict[str, Any]:
    run = predicate.get("runDetails") or {}
    builder = (run.get("builder") or {}).get("id") if isinstance(run, dict) else None
    build = predicate.get("buildDefinition") or {}
    internal = build.get("internalParameters") or {} if isinstance(build, dict) else {}
    return {"builder": builder or "unknown", "isolated": internal.get("network") == "none"}


def _signed_model_card(target: Target, statements: list[Statement]) -> dict[str, Any] | None:
    """The licence and datasets from README.md front matter, only if that file is in a verified manifest."""
    import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs

    from bastion.evidence.targets import TargetKind

    if target.kind is not TargetKind.DIR:
        return None
    signed = {
        r.get("name"): r.get("digest")
        for s in statements
        if s.predicate_type == MANIFEST_PREDICATE_TYPE
        for r in s.predicate.get("resources", [])
        if isinstance(r, dict) and r.get("algorithm") == "sha256"
    }
    path = target.path / "README.md"
    expected = signed.get("README.md")
    if not isinstance(expected, str) or path.is_symlink() or not path.is_file():
        return None
    try:
        if path.stat().st_size > _MAX_CARD:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), expected):
        return None  # changed since verification: not evidence
    lines = data.decode("utf-8", errors="replace").splitlines()
    if not lines or lines[0].strip() != "---" or "---" not in (line.strip() for line in lines[1:]):
        return {"licenses": [], "datasets": [], "source": "model-card"}
    end = next(i for i, line in enumerate(lines[1:], 1) if line.strip() == "---")
    try:
        front = yaml.safe_load("\n".join(lines[1:end]))
    except yaml.YAMLError:
        front = None
    front = front if isinstance(front, dict) else {}
    raw = front.get("license")
    licenses = [str(x) for x in raw] if isinstance(raw, list) else [str(raw)] if raw else []
    datasets = front.get("datasets") or []
    datasets = [datasets] if isinstance(datasets, str) else datasets if isinstance(datasets, list) else []
    return {
        "licenses": licenses,
        "datasets": [{"name": str(d), "licenses": []} for d in datasets],
        "source": "model-card",
    }


def _matches(packages: dict[str, str], snapshot: Snapshot) -> list[dict[str, Any]]:
    found = []
    for name in sorted(packages):
        for advisory in snapshot.matching(name, packages[name]):
            found.append(
                {
                    "package": name,
                    "version": packages[name],
                    "id": advisory.id,
                    "severity": advisory.severity,
                    "summary": advisory.summary,
                    "fixed": advisory.fixed_versions(),
                }
            )
    return found
