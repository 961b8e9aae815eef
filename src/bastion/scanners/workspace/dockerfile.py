"""Dockerfiles and Containerfiles: base images not pinned by digest or not from an approved registry,
containers that run as root, ``curl | sh``, ``ADD`` from URLs, secrets baked into ``ENV`` / ``ARG``,
missing company CA certificates (when the policy asks for them) and ``pip install`` without pins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from bastion.core import Category, Severity
from bastion.scanners.interface import Rule, rule
from bastion.scanners.workspace.text import is_placeholder


def _r(rid: str, kind: str, sev: Severity, title: str, fix: str, cwe: str) -> Rule:
    return rule(
        rid, kind, sev, title, fix, atlas=("AML.T0010", "AML.M0013"), cwe=(cwe,), category=Category.DOCKERFILE
    )


UNPINNED_BASE = _r(
    "BAS-K001",
    "base-image-not-pinned",
    Severity.MEDIUM,
    "Base image not pinned by digest",
    "Pin the base image: FROM registry/image:tag@sha256:<digest> (and let a bot update the digest).",
    "CWE-1357",
)
UNAPPROVED_BASE = _r(
    "BAS-K002",
    "base-image-not-approved",
    Severity.HIGH,
    "Base image not from an approved registry or prefix",
    "Build FROM an approved company image (see approved-registries in .bastion.toml).",
    "CWE-1357",
)
ROOT = _r(
    "BAS-K003",
    "runs-as-root",
    Severity.MEDIUM,
    "Container runs as root (no USER, or USER root, in the final stage)",
    "Add a non-root user and switch to it: RUN useradd -r app && ... then USER app.",
    "CWE-250",
)
PIPE_TO_SHELL = _r(
    "BAS-K004",
    "pipe-to-shell",
    Severity.HIGH,
    "Script downloaded and piped into a shell (curl | sh, wget | bash)",
    "Download to a file, verify its checksum or signature, then run it.",
    "CWE-494",
)
ADD_URL = _r(
    "BAS-K005",
    "add-from-url",
    Severity.MEDIUM,
    "ADD from a URL (no integrity check)",
    "Use ADD --checksum=sha256:<digest> <url>, or RUN curl + sha256sum -c.",
    "CWE-494",
)
SECRET_ENV = _r(
    "BAS-K006",
    "secret-in-env",
    Severity.HIGH,
    "Secret-like ENV / ARG with a value baked into the image",
    "Use build secrets (RUN --mount=type=secret) or inject the value at run time; image layers keep it.",
    "CWE-538",
)
NO_CA = _r(
    "BAS-K007",
    "company-ca-missing",
    Severity.MEDIUM,
    "Company CA certificates not installed (policy requires them)",
    "COPY the company CA bundle into /usr/local/share/ca-certificates/ and RUN update-ca-certificates.",
    "CWE-295",
)
PIP_UNPINNED = _r(
    "BAS-K008",
    "pip-install-unpinned",
    Severity.LOW,
    "pip install without exact pins or hashes",
    "pip install --require-hashes -r requirements.txt (or pin name==version for each package).",
    "CWE-1104",
)
INSECURE_FETCH = _r(
    "BAS-K009",
    "insecure-fetch",
    Severity.MEDIUM,
    "Download with TLS verification disabled (curl -k, wget --no-check-certificate, --trusted-host)",
    "Keep TLS verification on; install the company CA instead of disabling checks.",
    "CWE-295",
)

_INSTRUCTIONS = frozenset(
    {
        *("FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT"),
        *("VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"),
    }
)
_SECRET_NAME = re.compile(r"(?:passw|secret|token|api_?key|access_?key|private_?key|credential)", re.I)
_PIPE_SHELL = re.compile(r"\b(?:curl|wget)\b[^|;&]*\|\s*(?:sudo\s+)?(?:ba|z|da)?sh\b")
_INSECURE = re.compile(r"\bcurl\b[^;&|]*\s(?:-k|--insecure)\b|--no-check-certificate|--trusted-host")
_PIP = re.compile(r"\bpip3?\s+install\b(?P<args>[^;&|]*)")


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


@dataclass(frozen=True)
class DockerHit:
    rule: Rule
    line: int
    message: str


def is_dockerfile_name(name: str) -> bool:
    n = PurePosixPath(name).name.lower()
    return n.startswith(("dockerfile", "containerfile")) or n.endswith((".dockerfile", ".containerfile"))


def parse(text: str) -> list[Instruction]:
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for n, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if not pending:
            start = n
        if stripped.endswith("\\"):
            pending.append(stripped[:-1])
            continue
        pending.append(stripped)
        full = " ".join(pending)
        pending = []
        keyword, _, args = full.partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
    return out


def looks_like_dockerfile(text: str) -> bool:
    instr = parse(text[:32768])
    if not instr or not any(i.keyword == "FROM" for i in instr):
        return False
    return instr[0].keyword in ("FROM", "ARG") and all(i.keyword in _INSTRUCTIONS for i in instr[:50])


def check(text: str, approved: tuple[str, ...] = (), require_ca: bool = False) -> list[DockerHit]:
    instructions = parse(text)
    hits: list[DockerHit] = []
    stages: set[str] = set()
    last_from = 0
    user: str | None = None
    ca_installed = False
    for ins in instructions:
        if ins.keyword == "FROM" and ins.args:
            hits.extend(_check_from(ins, stages, approved))
            last_from, user = ins.line, None
        elif ins.keyword == "USER":
            user = ins.args.split(":", 1)[0].strip()
        elif (
            ins.keyword == "ADD"
            and re.search(r"(?:^|\s)https?://", ins.args)
            and "--checksum" not in ins.args
        ):
            hits.append(DockerHit(ADD_URL, ins.line, "ADD downloads a URL without --checksum"))
        elif ins.keyword in ("ENV", "ARG"):
            hits.extend(_check_env(ins))
        elif ins.keyword == "RUN":
            hits.extend(_check_run(ins))
            if "update-ca-certificates" in ins.args or "update-ca-trust" in ins.args:
                ca_installed = True
        if (
            ins.keyword in ("COPY", "ADD")
            and re.search(r"\.(?:crt|pem)\b", ins.args)
            and "ca" in ins.args.lower()
        ):
            ca_installed = True
    if last_from and (user is None or user in ("root", "0")):
        detail = "no USER instruction" if user is None else f"USER {user}"
        hits.append(DockerHit(ROOT, last_from, f"final stage runs as root ({detail})"))
    if require_ca and last_from and not ca_installed:
        hits.append(DockerHit(NO_CA, last_from, "no company CA certificate is installed"))
    return hits


def _check_from(ins: Instruction, stages: set[str], approved: tuple[str, ...]) -> list[DockerHit]:
    parts = [p for p in ins.args.split() if not p.startswith("--")]
    if not parts:
        return []
    image = parts[0]
    if len(parts) >= 3 and parts[1].lower() == "as":
        stages.add(parts[2].lower())
    if image.lower() in stages or image == "scratch" or image.startswith("$"):
        return []
    hits = []
    if "@sha256:" not in image:
        tag = image.rsplit("/", 1)[-1].partition(":")[2] or "latest"
        hits.append(DockerHit(UNPINNED_BASE, ins.line, f"FROM {image} (tag '{tag}' can change under you)"))
    if approved and not image.startswith(approved):
        hits.append(
            DockerHit(
                UNAPPROVED_BASE, ins.line, f"FROM {image.split('@')[0]} is not from an approved registry"
            )
        )
    return hits


def _check_env(ins: Instruction) -> list[DockerHit]:
    pairs: list[tuple[str, str]] = []
    if "=" in ins.args.split(" ", 1)[0]:
        for token in re.findall(r"""([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|'[^']*'|\S*)""", ins.args):
            pairs.append((token[0], token[1].strip("\"'")))
    else:
        name, _, value = ins.args.partition(" ")
        pairs.append((name, value.strip().strip("\"'")))
    hits = []
    for name, value in pairs:
        if not _SECRET_NAME.search(name) or re.search(r"(?:_FILE|_PATH|_NAME|_ID)$", name, re.I):
            continue
        if len(value) >= 4 and not value.startswith("$") and not is_placeholder(value):
            hits.append(DockerHit(SECRET_ENV, ins.line, f"{ins.keyword} {name} has a value in the image"))
    return hits


def _check_run(ins: Instruction) -> list[DockerHit]:
    hits = []
    if _PIPE_SHELL.search(ins.args):
        hits.append(DockerHit(PIPE_TO_SHELL, ins.line, "downloads a script and pipes it into a shell"))
    if _INSECURE.search(ins.args):
        hits.append(DockerHit(INSECURE_FETCH, ins.line, "fetches with TLS verification disabled"))
    for m in _PIP.finditer(ins.args):
        args = m.group("args").split()
        if "--require-hashes" in args or any(a in ("-r", "--requirement") for a in args):
            continue
        pkgs = [a for a in args if not a.startswith("-") and not a.startswith((".", "/"))]
        loose = [p for p in pkgs if "==" not in p and "@" not in p]
        if loose:
            hits.append(
                DockerHit(PIP_UNPINNED, ins.line, "pip install " + " ".join(loose[:5]) + " (not pinned)")
            )
    return hits
