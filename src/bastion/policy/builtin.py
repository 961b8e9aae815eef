"""The built-in rule pack: Rego modules shipped inside the package (``bastion/policy/rego/*.rego``).

Each rule is a Rego package ``bastion.rules.<name>`` that defines ``allow`` (an explicit pass),
``deny`` (a set of reasons) and ``remediation``. Its parameters are read from
``data.bastion.params.<name>``. Rules of your own follow the same contract in your own package.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

BUILTIN_RULES: dict[str, str] = {
    "signed-by-trusted-key": "bastion.rules.signed_by_trusted_key",
    "digests-match": "bastion.rules.digests_match",
    "no-findings-above": "bastion.rules.no_findings_above",
    "no-unsafe-formats": "bastion.rules.no_unsafe_formats",
    "license-allowlist": "bastion.rules.license_allowlist",
    "approved-packages": "bastion.rules.approved_packages",
    "no-known-vulnerabilities": "bastion.rules.no_known_vulnerabilities",
    "provenance-required": "bastion.rules.provenance_required",
}

# which kinds of evidence each built-in rule reads (their digests are recorded in the verdict)
EVIDENCE_USED: dict[str, tuple[str, ...]] = {
    "signed-by-trusted-key": ("manifest", "bom", "scan", "provenance"),
    "digests-match": ("manifest",),
    "no-findings-above": ("scan",),
    "no-unsafe-formats": ("scan",),
    "license-allowlist": ("bom", "manifest"),
    "approved-packages": ("bom",),
    "no-known-vulnerabilities": ("bom",),
    "provenance-required": ("provenance",),
}


def builtin_modules() -> dict[str, str]:
    """File name -> Rego source of every built-in rule."""
    folder = resources.files("bastion.policy") / "rego"
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".rego")
    }


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def shape_params(rule_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """Lists of package names become objects keyed by normalised name (fast set algebra in Rego)."""
    if rule_id != "approved-packages":
        return params
    shaped = dict(params)
    for key in ("approved", "denied"):
        if key in shaped:
            values = shaped[key]
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ValueError(f"{key} must be a list of package names")
            shaped[key] = {_normalize(v): True for v in values}
    return shaped
