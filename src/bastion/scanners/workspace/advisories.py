"""An offline snapshot of OSV advisories for PyPI packages: imported from files the user downloaded
(never fetched at scan time), recorded with the import date and each source's sha256.

``bastion advisories import PATH`` (a JSON file, a folder of them, or OSV's ``all.zip``) writes
``$BASTION_HOME/advisories/snapshot.json``; the dependency scanner matches pinned versions against it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.core.home import advisory_snapshot
from bastion.errors import ConfigError, InputError

SNAPSHOT_VERSION = 1


default_snapshot = advisory_snapshot


def normalize(name: str) -> str:
    """PEP 503 name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


# ------------------------------------------------------------------ versions (PEP 440 subset)

_VERSION = re.compile(
    r"^v?(?:(?P<epoch>\d+)!)?(?P<release>\d+(?:\.\d+)*)(?:[-_.]?(?P<pre>a|b|c|rc|alpha|beta|pre|preview)"
    r"[-_.]?(?P<pren>\d*))?(?:(?:-(?P<postn1>\d+))|(?:[-_.]?(?:post|rev|r)[-_.]?(?P<postn2>\d*)))?"
    r"(?:[-_.]?dev[-_.]?(?P<dev>\d*))?(?:\+[a-z0-9.]+)?$",
    re.IGNORECASE,
)
VersionKey = tuple[Any, ...]


def version_key(text: str) -> VersionKey | None:
    """A sortable key for a PEP 440 version, or None when it does not parse."""
    m = _VERSION.match(text.strip())
    if not m:
        return None
    release = tuple(int(x) for x in m.group("release").split("."))
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]
    pre_order = {"a": 0, "alpha": 0, "b": 1, "beta": 1, "c": 2, "rc": 2, "pre": 2, "preview": 2}
    if m.group("pre"):
        pre: tuple[int, int] = (pre_order[m.group("pre").lower()], int(m.group("pren") or 0))
    elif m.group("dev") is not None and not (m.group("postn1") or m.group("postn2") is not None):
        pre = (-1, 0)  # 1.0.dev0 sorts before 1.0a0
    else:
        pre = (3, 0)
    post_n = m.group("postn1") or m.group("postn2")
    post = int(post_n or 0) if (m.group("postn1") or m.group("postn2") is not None) else -1
    dev = int(m.group("dev") or 0) if m.group("dev") is not None else 1 << 30
    return (int(m.group("epoch") or 0), release, pre, post, dev)


# ------------------------------------------------------------------ snapshot


@dataclass(frozen=True)
class Advisory:
    id: str
    aliases: tuple[str, ...]
    summary: str
    severity: str  # critical / high / medium / low
    ranges: tuple[tuple[str | None, str | None, str | None], ...]  # (introduced, fixed, last_affected)
    versions: frozenset[str]

    def affects(self, version: str) -> bool:
        if version in self.versions:
            return True
        key = version_key(version)
        if key is None:
            return False
        for introduced, fixed, last in self.ranges:
            lo = version_key(introduced) if introduced and introduced != "0" else None
            if lo is not None and key < lo:
                continue
            if fixed is not None:
                hi = version_key(fixed)
                if hi is not None and key >= hi:
                    continue
            if last is not None:
                hi = version_key(last)
                if hi is not None and key > hi:
                    continue
            return True
        return False

    def fixed_versions(self) -> list[str]:
        return [f for _, f, _ in self.ranges if f]


def _severity(doc: dict[str, Any]) -> str:
    db = doc.get("database_specific")
    if isinstance(db, dict) and isinstance(db.get("severity"), str):
        sev = db["severity"].lower()
        return (
            "medium" if sev == "moderate" else sev if sev in ("critical", "high", "medium", "low") else "high"
        )
    return "high"


def _pypi_entries(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(doc.get("id"), str):
        raise ConfigError("OSV record without an 'id'")
    advisory_ranges: dict[str, Any] = {}
    for aff in doc.get("affected") or []:
        pkg = aff.get("package") or {}
        if pkg.get("ecosystem") != "PyPI" or not isinstance(pkg.get("name"), str):
            continue
        ranges: list[tuple[str | None, str | None, str | None]] = []
        for rng in aff.get("ranges") or []:
            if rng.get("type") not in ("ECOSYSTEM", "SEMVER"):
                continue
            introduced: str | None = None
            for ev in rng.get("events") or []:
                if "introduced" in ev:
                    introduced = str(ev["introduced"])
                elif "fixed" in ev:
                    ranges.append((introduced, str(ev["fixed"]), None))
                    introduced = None
                elif "last_affected" in ev:
                    ranges.append((introduced, None, str(ev["last_affected"])))
                    introduced = None
            if introduced is not None:
                ranges.append((introduced, None, None))
        advisory_ranges = {
            "id": doc["id"],
            "aliases": [a for a in doc.get("aliases") or [] if isinstance(a, str)],
            "summary": str(doc.get("summary") or doc.get("details") or "")[:200],
            "severity": _severity(doc),
            "ranges": ranges,
            "versions": [str(v) for v in aff.get("versions") or []],
        }
        yield normalize(pkg["name"]), advisory_ranges


def _documents(path: Path) -> Iterator[tuple[str, bytes]]:
    if path.is_dir():
        for p in sorted(path.rglob("*.json")):
            yield str(p), p.read_bytes()
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.filename.endswith(".json") and not info.is_dir():
                    yield f"{path}!{info.filename}", zf.read(info)
    elif path.is_file():
        yield str(path), path.read_bytes()
    else:
        raise InputError(f"{path}: no such file or directory")


def import_osv(sources: list[Path], snapshot: Path | None = None) -> dict[str, Any]:
    """Load OSV records (files, folders, zips) into the local snapshot; returns its metadata."""
    target = snapshot or default_snapshot()
    packages: dict[str, list[dict[str, Any]]] = {}
    recorded = []
    for src in sources:
        digest = hashlib.sha256()
        count = 0
        for name, blob in _documents(src):
            digest.update(blob)
            try:
                doc = json.loads(blob)
            except ValueError as exc:
                raise ConfigError(f"{name}: not JSON ({exc})") from None
            for record in doc if isinstance(doc, list) else [doc]:
                if not isinstance(record, dict):
                    raise ConfigError(f"{name}: not an OSV record")
                for pkg, adv in _pypi_entries(record):
                    packages.setdefault(pkg, []).append(adv)
                    count += 1
        recorded.append({"path": str(src), "sha256": digest.hexdigest(), "advisories": count})
    meta = {
        "schema_version": SNAPSHOT_VERSION,
        "imported_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "sources": recorded,
        "packages": len(packages),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps({**meta, "advisories": packages}, sort_keys=True), encoding="utf-8")
    tmp.replace(target)
    return meta


@dataclass(frozen=True)
class Snapshot:
    path: str
    imported_at: str
    packages: dict[str, tuple[Advisory, ...]]

    def matching(self, package: str, version: str) -> list[Advisory]:
        return [a for a in self.packages.get(normalize(package), ()) if a.affects(version)]


def load_snapshot(path: Path) -> Snapshot:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"advisory snapshot {path}: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != SNAPSHOT_VERSION:
        raise ConfigError(
            f"advisory snapshot {path}: unknown format", hint="re-run bastion advisories import"
        )
    packages = {
        name: tuple(
            Advisory(
                a["id"],
                tuple(a["aliases"]),
                a["summary"],
                a["severity"],
                tuple((r[0], r[1], r[2]) for r in a["ranges"]),
                frozenset(a["versions"]),
            )
            for a in advs
        )
        for name, advs in doc["advisories"].items()
    }
    return Snapshot(str(path), str(doc.get("imported_at", "")), packages)
