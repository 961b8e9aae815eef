"""``.gitignore`` semantics for the walker: nested ignore files, negation, directory-only patterns,
anchoring, ``*`` / ``?`` / ``[...]`` / ``**``. A file git would not commit is not a workspace leak.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    negate: bool
    dir_only: bool


def _translate(pattern: str) -> str:
    """A gitignore glob (already stripped of ``!``, leading and trailing ``/``) as a regex over a path."""
    out = []
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern[i : i + 2] == "**":
                if pattern[i : i + 3] == "**/":
                    out.append("(?:.*/)?")
                    i += 3
                    continue
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = j
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def parse_patterns(text: str) -> list[_Pattern]:
    out = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate or line.startswith("\\"):
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        body = _translate(line)
        regex = f"^{body}(?:/.*)?$" if anchored else f"^(?:.*/)?{body}(?:/.*)?$"
        out.append(_Pattern(re.compile(regex, re.DOTALL), negate, dir_only))
    return out


@dataclass
class IgnoreRules:
    """The ignore files met while walking down from the root, each relative to its own folder."""

    levels: list[tuple[str, list[_Pattern]]] = field(default_factory=list)

    def with_folder(self, folder: Path, rel: str) -> IgnoreRules:
        gi = folder / ".gitignore"
        if not gi.is_file():
            return self
        try:
            patterns = parse_patterns(gi.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return self
        return IgnoreRules([*self.levels, (rel, patterns)])

    def ignored(self, rel: str, is_dir: bool) -> bool:
        """Whether ``rel`` (relative to the scan root, ``/``-separated) is ignored. Last match wins."""
        result = False
        for base, patterns in self.levels:
            if base:
                if not rel.startswith(base + "/"):
                    continue
                sub = rel[len(base) + 1 :]
            else:
                sub = rel
            for p in patterns:
                if p.dir_only and not is_dir:
                    # "build/" still ignores files below a folder named build
                    if not any(p.regex.match(sub[:i]) for i in _slashes(sub)):
                        continue
                elif not p.regex.match(sub):
                    continue
                result = not p.negate
        return result


def _slashes(path: str) -> list[int]:
    return [i for i, c in enumerate(path) if c == "/"]
