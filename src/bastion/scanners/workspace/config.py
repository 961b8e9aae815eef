"""Workspace scan settings: from ``.bastion.toml`` (``[workspace]`` table) at the scan root and the CLI.

```toml
[workspace]
package-allowlist = "approved-packages.txt"    # one package name per line, relative to the root
approved-registries = ["registry.acme.example/", "python@sha256:"]   # allowed FROM prefixes
require-ca-certificates = true                 # Dockerfiles must install the company CA
advisories = "osv-snapshot.json"               # default: $BASTION_HOME/advisories/snapshot.json
max-dataset-rows = 10000                       # rows sampled per dataset
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bastion.errors import ConfigError
from bastion.scanners.workspace.baseline import ForeignIgnores, read_foreign

CONFIG_NAME = ".bastion.toml"
_KEYS = frozenset(
    {"package-allowlist", "approved-registries", "require-ca-certificates", "advisories", "max-dataset-rows"}
)


@dataclass(frozen=True)
class WorkspaceConfig:
    package_allowlist: frozenset[str] | None = None
    approved_registries: tuple[str, ...] = ()
    require_ca_certificates: bool = False
    advisories: str | None = None  # path of an advisory snapshot (None: none available)
    max_dataset_rows: int = 10_000
    max_dataset_bytes: int = 16 * 1024 * 1024  # text read from the head of a dataset for sampling
    foreign: ForeignIgnores = field(default_factory=ForeignIgnores)
    strict: bool = False


def load_config(root: Path, *, advisories: Path | None = None, strict: bool = False) -> WorkspaceConfig:
    """Settings for scanning ``root`` (a folder or a file's parent)."""
    from bastion.core.home import advisory_snapshot

    default_snapshot = advisory_snapshot()
    folder = root if root.is_dir() else root.parent
    table: dict[str, Any] = {}
    path = folder / CONFIG_NAME
    if path.is_file():
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from None
        table = doc.get("workspace", {})
        unknown = set(table) - _KEYS
        if unknown:
            raise ConfigError(f"{path}: unknown [workspace] keys {sorted(unknown)}")
    allowlist = None
    if "package-allowlist" in table:
        from bastion.scanners.workspace.dependencies import load_allowlist

        al = folder / str(table["package-allowlist"])
        try:
            allowlist = load_allowlist(al.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"package allowlist {al}: {exc.strerror or exc}") from None
    snap: Path | None = advisories
    if snap is None and "advisories" in table:
        snap = folder / str(table["advisories"])
    if snap is None and default_snapshot.is_file():
        snap = default_snapshot
    if snap is not None and not snap.is_file():
        raise ConfigError(
            f"advisory snapshot {snap}: no such file", hint="bastion advisories import OSV_FILE"
        )
    registries = table.get("approved-registries", [])
    if not isinstance(registries, list) or not all(isinstance(r, str) for r in registries):
        raise ConfigError(f"{path}: approved-registries must be a list of strings")
    return WorkspaceConfig(
        package_allowlist=allowlist,
        approved_registries=tuple(registries),
        require_ca_certificates=bool(table.get("require-ca-certificates", False)),
        advisories=str(snap) if snap else None,
        max_dataset_rows=int(table.get("max-dataset-rows", 10_000)),
        foreign=read_foreign(folder),
        strict=strict,
    )
