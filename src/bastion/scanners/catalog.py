"""Every detection rule Bastion's scanners (models, workspaces) can report (SARIF, docs, `--list-rules`)."""

from __future__ import annotations

import importlib

from bastion.scanners.interface import RULES, Rule

_MODULES = (
    "bastion.scanners.engine",
    "bastion.scanners.archive",
    "bastion.scanners.pickle.rules",
    "bastion.scanners.numpy_format",
    "bastion.scanners.onnx",
    "bastion.scanners.savedmodel",
    "bastion.scanners.safetensors",
    "bastion.scanners.gguf",
    "bastion.scanners.keras",
    "bastion.scanners.skops",
    "bastion.scanners.workspace.secrets",
    "bastion.scanners.workspace.pii",
    "bastion.scanners.workspace.unsafe_code",
    "bastion.scanners.workspace.dependencies",
    "bastion.scanners.workspace.dockerfile",
)


def all_rules() -> list[Rule]:
    """Import every scanner module (they declare their rules at import time) and list the rules."""
    for name in _MODULES:
        importlib.import_module(name)
    return sorted(RULES.values(), key=lambda r: r.rule_id)


def rules_markdown() -> str:
    lines = [
        "# Scanner rules",
        "",
        "Generated from the code (`bastion.scanners.catalog.rules_markdown`); the test suite fails when",
        "this file is stale (`BASTION_UPDATE_GOLDEN=1 pytest tests/golden` rewrites it).",
        "",
        "Ranges: `BAS-M` model files, `BAS-S` secrets, `BAS-P` personal data, `BAS-C` unsafe code,",
        "`BAS-D` dependencies, `BAS-K` Dockerfiles.",
        "",
        "| rule | severity | kind | what it means | ATLAS | CWE |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in all_rules():
        atlas, cwe = ", ".join(r.atlas), ", ".join(r.cwe)
        lines.append(f"| {r.rule_id} | {r.severity.value} | `{r.kind}` | {r.title} | {atlas} | {cwe} |")
    return "\n".join(lines) + "\n"
