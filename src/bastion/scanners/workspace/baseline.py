"""Accepting known findings: Bastion baselines (by fingerprint, not line number), inline
``# bastion: ignore[BAS-S001] reason`` comments, and the ignore files of the tools teams switch from
(detect-secrets ``.secrets.baseline``, gitleaks ``.gitleaksignore``).

A fingerprint hashes the rule, the file, the location *kind* (digits removed: ``cell 3`` and
``cell 4`` are the same place once a cell is inserted), the message (which for secrets holds only
the masked value) and the occurrence index among identical findings, so editing lines above a
finding does not resurrect it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bastion.core import Finding, ScanReport
from bastion.errors import ConfigError

BASELINE_VERSION = 1
_DIGITS = re.compile(r"\d+")
_INLINE = re.compile(r"bastion:\s*ignore(?:\[(?P<ids>[A-Za-z0-9, -]+)\])?")


def fingerprints(findings: tuple[Finding, ...] | list[Finding]) -> list[str]:
    """One stable fingerprint per finding, in the same order."""
    seen: dict[tuple[str, ...], int] = {}
    order = sorted(range(len(findings)), key=lambda i: (findings[i].line or 0, findings[i].offset or 0))
    out = [""] * len(findings)
    for i in order:
        f = findings[i]
        key = (f.rule_id, f.file, _DIGITS.sub("#", f.member or ""), f.message, f.callable or "")
        n = seen.get(key, 0)
        seen[key] = n + 1
        out[i] = hashlib.sha256("\0".join((*key, str(n))).encode()).hexdigest()[:32]
    return out


def write_baseline(report: ScanReport, path: Path) -> int:
    entries = [
        {"fingerprint": fp, "rule_id": f.rule_id, "file": f.file, "reason": "accepted in baseline"}
        for f, fp in zip(report.findings, fingerprints(report.findings), strict=True)
    ]
    doc = {"schema_version": BASELINE_VERSION, "tool": "bastion", "findings": entries}
    path.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return len(entries)


def load_baseline(path: Path) -> frozenset[str]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"baseline {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != BASELINE_VERSION:
        raise ConfigError(
            f"baseline {path}: not a Bastion baseline (schema_version {BASELINE_VERSION})",
            hint="write one with: bastion scan PATH --write-baseline FILE",
        )
    return frozenset(str(e["fingerprint"]) for e in doc.get("findings", []) if isinstance(e, dict))


def apply_baseline(report: ScanReport, accepted: frozenset[str]) -> ScanReport:
    keep = [
        f for f, fp in zip(report.findings, fingerprints(report.findings), strict=True) if fp not in accepted
    ]
    extras = {**report.extras, "baselined": len(report.findings) - len(keep)}
    return replace(report, findings=tuple(keep), extras=extras)


def inline_ignored(line_text: str, rule_id: str) -> bool:
    """Whether a raw line carries ``bastion: ignore`` for this rule (or for every rule)."""
    m = _INLINE.search(line_text)
    if m is None:
        return False
    ids = m.group("ids")
    return ids is None or rule_id in {i.strip() for i in ids.split(",")}


@dataclass(frozen=True)
class ForeignIgnores:
    """What detect-secrets and gitleaks teams already accepted: (file, sha1 of secret) and (file, line)."""

    secret_hashes: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    lines: frozenset[tuple[str, int]] = field(default_factory=frozenset)

    def accepts(self, file: str, line: int | None, secret: str) -> bool:
        if line is not None and (file, line) in self.lines:
            return True
        return (file, hashlib.sha1(secret.encode()).hexdigest()) in self.secret_hashes  # noqa: S324 - detect-secrets' format


def read_foreign(root: Path) -> ForeignIgnores:
    """Read ``.secrets.baseline`` and ``.gitleaksignore`` at the scan root, when present."""
    hashes: set[tuple[str, str]] = set()
    lines: set[tuple[str, int]] = set()
    ds = root / ".secrets.baseline"
    if ds.is_file():
        try:
            doc: Any = json.loads(ds.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{ds}: not a detect-secrets baseline ({exc})") from None
        for fname, results in (doc.get("results") or {}).items():
            for r in results if isinstance(results, list) else []:
                if isinstance(r, dict) and isinstance(r.get("hashed_secret"), str):
                    hashes.add((fname, r["hashed_secret"]))
    gl = root / ".gitleaksignore"
    if gl.is_file():
        for raw in gl.read_text(encoding="utf-8", errors="replace").splitlines():
            entry = raw.strip()
            if not entry or entry.startswith("#"):
                continue
            parts = entry.split(":")
            if len(parts) >= 3 and parts[-1].isdigit():
                file_parts = parts[:-2]
                if len(file_parts) > 1 and re.fullmatch(r"[0-9a-f]{7,40}", file_parts[0]):
                    file_parts = file_parts[1:]  # commit:file:rule:line (history findings)
                lines.add((":".join(file_parts), int(parts[-1])))
    return ForeignIgnores(frozenset(hashes), frozenset(lines))
