"""The allowlist / denylist catalogue: versioned JSON data files, one per framework.

An allowlist file::

    {"schema_version": 1, "kind": "allowlist", "framework": "torch", "version": "2.13",
     "entries": [{"module": "torch._utils", "name": "_rebuild_tensor_v2", "use": "call"},
                 {"module": "collections", "name": "defaultdict", "use": "call", "args": {"0": "call"}}]}

``use`` is the most a pickle may do with the global (``value`` < ``new`` < ``call``); ``args``
names argument positions that the callable itself calls (``call``) or instantiates (``new``), so
that those arguments are judged as called too. An entry may instead name a whole module tree,
``{"module_prefix": "__torch__", "use": "new"}`` (TorchScript classes, which the TorchScript loader
resolves from the archive's own compiled code, never by importing Python). A denylist file
(``"kind": "denylist"``) lists qualified prefixes (``"os"``, ``"builtins.eval"``) whose use is
reported as critical; an entry may exempt names directly under it, ``{"qualname": "pathlib",
"except": ["PosixPath"]}``: the class itself is then judged by the allowlist, while any walk
through it (``pathlib.PosixPath.write_text``, ``pathlib.os.system``) stays denied. Organisations
add their own files with :func:`load_catalogue`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bastion.errors import ConfigError
from bastion.scanners.pickle.values import Use

SCHEMA_VERSION = 1
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Entry:
    module: str
    name: str
    use: Use
    args: tuple[tuple[int, Use], ...] = ()


@dataclass(frozen=True, eq=False)
class Catalogue:
    """Exact allowlisted globals and denylisted qualified prefixes."""

    allow: Mapping[tuple[str, str], Entry]
    deny: frozenset[str]
    sources: tuple[str, ...] = ()
    prefixes: Mapping[str, Use] = field(default_factory=dict)
    exempt: frozenset[str] = frozenset()  # qualified names a denylist entry's "except" leaves out

    def entry(self, module: str, name: str) -> Entry | None:
        exact = self.allow.get((module, name))
        if exact is not None or not self.prefixes:
            return exact
        parts = module.split(".")
        for i in range(len(parts), 0, -1):
            use = self.prefixes.get(".".join(parts[:i]))
            if use is not None:
                return Entry(module, name, use)
        return None

    def denied(self, module: str, name: str) -> bool:
        """True if ``module.name`` or any dotted prefix of it is denylisted, or it walks to a dunder
        attribute (``f.__globals__``, ``cls.__subclasses__``: a protocol-4 attribute walk)."""
        if any(part.startswith("__") and part.endswith("__") for part in name.split(".")[1:]):
            return True
        qualname = f"{module}.{name}"
        deny = self.deny
        if qualname in self.exempt and qualname not in deny:
            return False
        parts = qualname.split(".")
        return any(".".join(parts[:i]) in deny for i in range(1, len(parts) + 1))


def _fail(source: str, message: str) -> ConfigError:
    return ConfigError(
        f"catalogue {source}: {message}",
        hint="see docs for the catalogue format (schema_version 1, kind allowlist|denylist, entries)",
    )


def _parse(
    doc: object,
    source: str,
    allow: dict[tuple[str, str], Entry],
    deny: set[str],
    prefixes: dict[str, Use],
    exempt: set[str],
) -> None:
    if not isinstance(doc, dict):
        raise _fail(source, "top level must be an object")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise _fail(source, f"schema_version must be {SCHEMA_VERSION}")
    kind = doc.get("kind", "allowlist")
    entries = doc.get("entries")
    if kind not in ("allowlist", "denylist") or not isinstance(entries, list):
        raise _fail(source, "kind must be allowlist or denylist and entries a list")
    if kind == "allowlist":
        for key in ("framework", "version"):
            if not isinstance(doc.get(key), str):
                raise _fail(source, f"{key} must be a string")
    for i, raw in enumerate(entries):
        if not isinstance(raw, dict):
            raise _fail(source, f"entry {i} must be an object")
        if kind == "denylist":
            qual = raw.get("qualname")
            if not isinstance(qual, str) or not _DOTTED.match(qual):
                raise _fail(source, f"entry {i}: qualname must be a dotted name")
            names = raw.get("except", [])
            if not isinstance(names, list) or not all(isinstance(n, str) and _NAME.match(n) for n in names):
                raise _fail(source, f"entry {i}: except must list names directly under {qual}")
            deny.add(qual)
            exempt.update(f"{qual}.{n}" for n in names)
            continue
        if "module_prefix" in raw:
            prefix, prefix_use = raw["module_prefix"], raw.get("use", "new")
            if not (isinstance(prefix, str) and _DOTTED.match(prefix)) or prefix_use not in ("new", "value"):
                raise _fail(source, f"entry {i}: module_prefix must be a dotted name with use new or value")
            prefixes[prefix] = max(prefixes.get(prefix, Use.VALUE), Use.parse(prefix_use))
            continue
        module, name, use = raw.get("module"), raw.get("name"), raw.get("use", "call")
        if not (isinstance(module, str) and _DOTTED.match(module)):
            raise _fail(source, f"entry {i}: module must be a dotted name")
        if not (isinstance(name, str) and _DOTTED.match(name)):
            raise _fail(source, f"entry {i}: name must be a dotted name")
        if use not in ("call", "new", "value"):
            raise _fail(source, f"entry {i}: use must be call, new or value")
        args_raw = raw.get("args", {})
        if not isinstance(args_raw, dict):
            raise _fail(source, f"entry {i}: args must be an object")
        args: list[tuple[int, Use]] = []
        for pos, arg_use in args_raw.items():
            if not (isinstance(pos, str) and pos.isdigit() and arg_use in ("call", "new", "value")):
                raise _fail(source, f"entry {i}: args maps positions to call|new|value")
            args.append((int(pos), Use.parse(arg_use)))
        entry = Entry(module, name, Use.parse(use), tuple(sorted(args)))
        old = allow.get((module, name))
        if old is not None:  # several files may name one global: keep the most permissive
            entry = Entry(
                module, name, max(old.use, entry.use), tuple(sorted(set(old.args) | set(entry.args)))
            )
        allow[(module, name)] = entry


# Package data beside the code (setuptools package-data): read directly, because
# importlib.resources costs more start-up than the whole catalogue.
_BUILTIN = Path(__file__).resolve().parent.parent / "catalogue"


def _builtin_files() -> list[tuple[str, str]]:
    return [(f"builtin:{p.name}", p.read_text(encoding="utf-8")) for p in sorted(_BUILTIN.glob("*.json"))]


def load_catalogue(extra_paths: Iterable[str | Path] = ()) -> Catalogue:
    """The built-in catalogue plus organisation files; a malformed file raises ConfigError."""
    allow: dict[tuple[str, str], Entry] = {}
    deny: set[str] = set()
    prefixes: dict[str, Use] = {}
    exempt: set[str] = set()
    texts = _builtin_files()
    for path in extra_paths:
        try:
            texts.append((str(path), Path(path).read_text(encoding="utf-8")))
        except OSError as exc:
            raise ConfigError(f"catalogue {path}: cannot read ({exc.strerror})") from exc
    for source, text in texts:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise _fail(source, f"not valid JSON ({exc})") from exc
        _parse(doc, source, allow, deny, prefixes, exempt)
    return Catalogue(
        allow=allow,
        deny=frozenset(deny),
        sources=tuple(s for s, _ in texts),
        prefixes=prefixes,
        exempt=frozenset(exempt),
    )


@functools.cache
def default_catalogue() -> Catalogue:
    return load_catalogue()
