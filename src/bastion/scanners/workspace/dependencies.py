"""Python dependencies declared in requirements files, ``pyproject.toml`` and lock files (poetry.lock,
uv.lock, pylock.toml, Pipfile.lock): unpinned or loosely pinned packages, packages outside the
company allowlist, direct URLs / insecure indexes, and versions with a known advisory in the offline
OSV snapshot.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from bastion.core import Category, Severity
from bastion.scanners.interface import FormatError, Rule, rule
from bastion.scanners.workspace.advisories import Snapshot, normalize


def _r(rid: str, kind: str, sev: Severity, title: str, fix: str, cwe: str) -> Rule:
    atlas = ("AML.T0010", "AML.M0016")
    return rule(rid, kind, sev, title, fix, atlas=atlas, cwe=(cwe,), category=Category.DEPENDENCY)


UNPINNED = _r(
    "BAS-D001",
    "unpinned-dependency",
    Severity.MEDIUM,
    "Dependency without any version constraint",
    "Pin an exact version (name==X.Y.Z) in requirements or use a lock file with hashes.",
    "CWE-1104",
)
LOOSE = _r(
    "BAS-D002",
    "loosely-pinned-dependency",
    Severity.LOW,
    "Requirement pinned by a range, not an exact version",
    "Pin exact versions in requirements files (ranges belong in library metadata, not deployments).",
    "CWE-1104",
)
NOT_ALLOWED = _r(
    "BAS-D003",
    "unapproved-package",
    Severity.MEDIUM,
    "Package not on the company allowlist",
    "Ask for the package to be reviewed and added to the allowlist, or use an approved alternative.",
    "CWE-1357",
)
VULNERABLE = _r(
    "BAS-D004",
    "vulnerable-dependency",
    Severity.HIGH,
    "Pinned version has a known advisory (offline OSV snapshot)",
    "Upgrade to a fixed version listed in the advisory, then re-lock.",
    "CWE-1395",
)
INSECURE_SOURCE = _r(
    "BAS-D005",
    "insecure-package-source",
    Severity.MEDIUM,
    "Package from a direct URL, VCS, plain-http index, extra index or trusted host",
    "Install from the approved index over https, pin versions and require hashes (--require-hashes).",
    "CWE-494",
)

_REQ = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?P<spec>(?:[<>=!~]=?|===)[^;#]*)?\s*(?:;.*)?$"
)
_EXACT = re.compile(r"^===?\s*(?P<v>[A-Za-z0-9.+!_-]+)$")


@dataclass(frozen=True)
class DepHit:
    rule: Rule
    line: int
    message: str
    severity: Severity | None = None


@dataclass(frozen=True)
class _Req:
    name: str
    spec: str
    line: int


def is_requirements_name(name: str) -> bool:
    n = PurePosixPath(name).name.lower()
    return (
        n.endswith((".txt", ".in")) and ("requirements" in n or "constraints" in n)
    ) or n == "requirements"


LOCK_NAMES = ("poetry.lock", "uv.lock", "pylock.toml", "pipfile.lock", "pdm.lock")


def kind_of(name: str) -> str | None:
    n = PurePosixPath(name).name.lower()
    if n == "pyproject.toml":
        return "pyproject"
    if n in LOCK_NAMES or (n.startswith("pylock.") and n.endswith(".toml")):
        return "lock"
    if is_requirements_name(name):
        return "requirements"
    return None


def _requirement_lines(text: str) -> Iterator[tuple[int, str]]:
    pending = ""
    start = 0
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not pending:
            start = n
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        if full:
            yield start, full


def check_requirements(
    text: str, allowlist: frozenset[str] | None, snapshot: Snapshot | None
) -> list[DepHit]:
    hits: list[DepHit] = []
    for line, entry in _requirement_lines(text):
        if entry.startswith("-"):
            hits.extend(_option(entry, line))
            continue
        if "://" in entry or entry.startswith(("git+", "hg+", "svn+")) or " @ " in entry:
            hits.append(DepHit(INSECURE_SOURCE, line, f"installed from a direct reference: {entry[:80]}"))
            continue
        req_text = entry.split("--hash", 1)[0].strip()
        m = _REQ.match(req_text)
        if not m:
            continue
        hits.extend(_judge(_Req(m.group("name"), (m.group("spec") or "").strip(), line), allowlist, snapshot))
        spec = (m.group("spec") or "").strip()
        if spec and not _EXACT.match(spec):
            hits.append(DepHit(LOOSE, line, f"{m.group('name')} {spec} is a range"))
    return hits


def _option(entry: str, line: int) -> list[DepHit]:
    opt, _, value = entry.partition(" ")
    opt = opt.split("=", 1)[0]
    value = value.strip() or entry.partition("=")[2]
    if opt in ("--trusted-host",):
        return [DepHit(INSECURE_SOURCE, line, f"--trusted-host {value} turns off TLS checks for that host")]
    if opt in ("-i", "--index-url", "--extra-index-url", "-f", "--find-links") and value.startswith(
        "http://"
    ):
        return [DepHit(INSECURE_SOURCE, line, f"{opt} over plain http", Severity.HIGH)]
    if opt == "--extra-index-url":
        return [DepHit(INSECURE_SOURCE, line, "--extra-index-url allows dependency confusion", Severity.LOW)]
    return []


def _judge(req: _Req, allowlist: frozenset[str] | None, snapshot: Snapshot | None) -> list[DepHit]:
    hits: list[DepHit] = []
    if not req.spec or req.spec == "*":
        hits.append(DepHit(UNPINNED, req.line, f"{req.name} has no version constraint"))
    if allowlist is not None and normalize(req.name) not in allowlist:
        hits.append(DepHit(NOT_ALLOWED, req.line, f"{req.name} is not on the allowlist"))
    exact = _EXACT.match(req.spec)
    if exact and snapshot is not None:
        hits.extend(_vulnerable(req.name, exact.group("v"), req.line, snapshot))
    return hits


def _vulnerable(name: str, version: str, line: int, snapshot: Snapshot) -> list[DepHit]:
    out = []
    for adv in snapshot.matching(name, version):
        fixed = ", ".join(adv.fixed_versions()) or "none yet"
        ids = ", ".join((adv.id, *adv.aliases[:2]))
        out.append(
            DepHit(
                VULNERABLE,
                line,
                f"{name}=={version}: {ids} (fixed in {fixed})",
                Severity.parse(adv.severity),
            )
        )
    return out


def _line_of(text: str, needle: str) -> int:
    pos = text.find(needle)
    return text.count("\n", 0, pos) + 1 if pos >= 0 else 1


def check_pyproject(text: str, allowlist: frozenset[str] | None, snapshot: Snapshot | None) -> list[DepHit]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FormatError(f"pyproject.toml: {exc}") from None
    hits: list[DepHit] = []
    project: dict[str, Any] = doc["project"] if isinstance(doc.get("project"), dict) else {}
    specs: list[str] = [d for d in project.get("dependencies") or [] if isinstance(d, str)]
    for group in (project.get("optional-dependencies") or {}).values():
        specs.extend(d for d in group if isinstance(d, str))
    for spec in specs:
        m = _REQ.match(spec.strip())
        if m is None:
            if "@" in spec:
                hits.append(DepHit(INSECURE_SOURCE, _line_of(text, spec), f"direct reference: {spec[:80]}"))
            continue
        if normalize(m.group("name")) == normalize(str(project.get("name", ""))):
            continue  # self-references in extras (pkg[dev])
        hits.extend(
            _judge(
                _Req(m.group("name"), (m.group("spec") or "").strip(), _line_of(text, spec)),
                allowlist,
                snapshot,
            )
        )
    tool = doc.get("tool")
    poetry: dict[str, Any] = tool.get("poetry", {}) if isinstance(tool, dict) else {}
    deps: dict[str, Any] = dict(poetry.get("dependencies") or {})
    for grp in (poetry.get("group") or {}).values():
        deps.update(grp.get("dependencies") or {})
    for name, value in deps.items():
        if name.lower() == "python":
            continue
        version = (
            value if isinstance(value, str) else value.get("version", "") if isinstance(value, dict) else ""
        )
        spec = "" if version in ("", "*") else ("==" + version if version[:1].isdigit() else version)
        hits.extend(_judge(_Req(name, spec, _line_of(text, f"{name} =")), allowlist, snapshot))
    return hits


def check_lock(
    name: str, text: str, allowlist: frozenset[str] | None, snapshot: Snapshot | None
) -> list[DepHit]:
    pinned: list[tuple[str, str]] = []
    try:
        if name.lower() == "pipfile.lock":
            doc = json.loads(text)
            for section in ("default", "develop"):
                for pkg, info in (doc.get(section) or {}).items():
                    if isinstance(info, dict) and isinstance(info.get("version"), str):
                        pinned.append((pkg, info["version"].lstrip("=")))
        else:
            doc = tomllib.loads(text)
            for pkg in doc.get("package") or doc.get("packages") or []:
                if (
                    isinstance(pkg, dict)
                    and isinstance(pkg.get("name"), str)
                    and isinstance(pkg.get("version"), str)
                ):
                    pinned.append((pkg["name"], pkg["version"]))
    except (ValueError, tomllib.TOMLDecodeError, AttributeError) as exc:
        raise FormatError(f"lock file does not parse: {exc}") from None
    hits: list[DepHit] = []
    for pkg, version in pinned:
        line = _line_of(text, f'"{pkg}"')
        if allowlist is not None and normalize(pkg) not in allowlist:
            hits.append(DepHit(NOT_ALLOWED, line, f"{pkg} is not on the allowlist"))
        if snapshot is not None:
            hits.extend(_vulnerable(pkg, version, line, snapshot))
    return hits


@dataclass(frozen=True)
class Installed:
    metadata: Path  # the distribution's ``*.dist-info/METADATA``
    name: str
    version: str


def installed(prefix: Path) -> list[Installed]:
    """Every distribution installed in the Python environment at ``prefix`` (a venv or an
    installation), from its ``METADATA`` headers: nothing is imported or run."""
    from email.parser import HeaderParser

    from bastion.evidence.envfiles import read_dist_file, site_packages

    found = []
    for site in site_packages(prefix):
        for info in sorted(site.glob("*.dist-info")):
            raw = read_dist_file(info / "METADATA")
            if raw is None:
                continue
            headers = HeaderParser().parsestr(raw.decode("utf-8", "replace"), headersonly=True)
            name, version = headers.get("Name"), headers.get("Version")
            if name and version:
                found.append(Installed(info / "METADATA", str(name).strip(), str(version).strip()))
    return found


def check_installed(
    dist: Installed, allowlist: frozenset[str] | None, snapshot: Snapshot | None
) -> list[DepHit]:
    """An installed distribution against the company allowlist and the advisories (its version is exact)."""
    hits: list[DepHit] = []
    if allowlist is not None and normalize(dist.name) not in allowlist:
        message = f"{dist.name} {dist.version} is installed but not on the allowlist"
        hits.append(DepHit(NOT_ALLOWED, 1, message))
    if snapshot is not None:
        hits.extend(_vulnerable(dist.name, dist.version, 1, snapshot))
    return hits


def load_allowlist(text: str) -> frozenset[str]:
    """One package name per line (``#`` comments, version specifiers ignored)."""
    names = set()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            m = _REQ.match(line)
            if m:
                names.add(normalize(m.group("name")))
    return frozenset(names)
