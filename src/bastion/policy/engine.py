"""Rego evaluated in-process with ``regopy`` (rego-cpp): modules compiled once, evaluated many times.

Fail closed: a rule passes only when its package defines ``allow`` as exactly ``true`` *and* its
``deny`` set is empty. Anything else is a failure; a rule the interpreter cannot evaluate (runtime
error, conflicting outputs, a built-in error, a malformed result) is an ``error``, never a pass.
Built-in errors are strict (``1 / "x"`` is an error, not "undefined").
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bastion.policy.builtin import builtin_modules, shape_params
from bastion.policy.document import Policy, RuleSpec
from bastion.policy.errors import PolicyError

_PACKAGE_LINE = re.compile(r"^\s*package\s+([A-Za-z_][A-Za-z0-9_.]*)\s*$", re.MULTILINE)
_ERROR_POSITION = re.compile(r"\(error \d+:([^|]*)\|(\d+)\|\d+")
_ERROR_MESSAGE = re.compile(r"\(errormsg \d+:([^)]*)\)")
MAX_MODULE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class RawResult:
    """What one rule's package said, before levels and waivers: allow, reasons, or an error."""

    allow: bool
    reasons: tuple[str, ...]
    remediation: str | None
    error: str | None = None


class CompiledPolicy:
    """A policy's Rego modules compiled into one bundle; ``evaluate`` is thread-safe."""

    def __init__(self, policy: Policy) -> None:
        import regopy  # type: ignore[import-untyped]

        self.policy = policy
        sources = {f"builtin/{name}": text for name, text in builtin_modules().items()}
        for path in policy.modules:
            sources[str(path)] = _read_module(path, policy.path)
        declared = {m.group(1) for text in sources.values() for m in _PACKAGE_LINE.finditer(text)}
        for rule in policy.rules:
            if rule.package not in declared:
                raise PolicyError(
                    f"rule {rule.id!r} uses package {rule.package!r}, which no module declares",
                    path=policy.path,
                    line=rule.line,
                    hint="list the .rego file under 'modules:'",
                )
        params: dict[str, Any] = {}
        for rule in policy.rules:
            try:
                params[_param_key(rule)] = shape_params(rule.id, rule.params)
            except ValueError as exc:
                raise PolicyError(f"rule {rule.id!r}: {exc}", path=policy.path, line=rule.line) from None
        builder = regopy.Interpreter()
        for name, text in sources.items():
            with _captured() as captured:
                try:
                    builder.add_module(name, text)
                except regopy.RegoError as exc:
                    raise _module_error(name, text, str(exc), captured.read()) from None
        builder.add_data({"bastion": {"params": params}})
        self._bundles: dict[str, Any] = {}
        query = "; ".join(f"r{i} = data.{rule.package}" for i, rule in enumerate(policy.rules))
        with _captured() as captured:
            try:
                self._combined = builder.build(query, [])
                for rule in policy.rules:
                    self._bundles[rule.id] = builder.build(f"r = data.{rule.package}", [])
            except regopy.RegoError as exc:
                raise PolicyError(
                    f"the Rego modules do not compile: {_message(str(exc)) or captured.read().strip()}",
                    path=policy.path,
                ) from None
        self._runtime = regopy.Interpreter()
        self._runtime.strict_built_in_errors = True
        self._lock = threading.Lock()

    def evaluate(self, document: dict[str, Any]) -> dict[str, RawResult]:
        """Evaluate every rule against ``document`` (the projected input)."""
        import regopy

        rules = self.policy.rules
        with self._lock:
            self._runtime.set_input(regopy.Input(document))
            output = self._runtime.query_bundle(self._combined)
            if output.ok():
                try:
                    return {
                        rule.id: _interpret(rule, json.loads(output.binding(f"r{i}").json()))
                        for i, rule in enumerate(rules)
                    }
                except (regopy.RegoError, ValueError):
                    pass  # fall through: find out which rule is broken
            results = {}
            for rule in rules:
                single = self._runtime.query_bundle(self._bundles[rule.id])
                if not single.ok():
                    results[rule.id] = RawResult(False, (), None, _node_errors(single.node()))
                    continue
                try:
                    value = json.loads(single.binding("r").json())
                except (regopy.RegoError, ValueError):
                    results[rule.id] = RawResult(False, (), None, "the rule produced no readable result")
                    continue
                results[rule.id] = _interpret(rule, value)
            return results


def _param_key(rule: RuleSpec) -> str:
    return rule.package.rsplit(".", 1)[-1] if rule.builtin else rule.id.replace("-", "_")


def _interpret(rule: RuleSpec, value: Any) -> RawResult:
    if not isinstance(value, dict):
        return RawResult(False, (), None, f"package {rule.package} did not evaluate to an object")
    remediation = value.get("remediation")
    remediation = remediation if isinstance(remediation, str) else None
    deny = value.get("deny", [])
    if not isinstance(deny, list):
        return RawResult(False, (), remediation, "'deny' must be a set of reasons")
    reasons = []
    for item in deny:
        if isinstance(item, str):
            reasons.append(item)
        elif isinstance(item, dict) and isinstance(item.get("msg"), str):
            reasons.append(item["msg"])
        else:
            reasons.append(json.dumps(item, sort_keys=True))
    allow = value.get("allow")
    if allow is not True and not reasons:
        reasons.append("the rule did not explicitly allow (no 'allow' that is true): denied")
    return RawResult(allow is True and not reasons, tuple(sorted(reasons)), remediation)


def _read_module(path: Path, policy_path: Path) -> str:
    try:
        if path.stat().st_size > MAX_MODULE_BYTES:
            raise PolicyError(f"larger than {MAX_MODULE_BYTES} bytes", path=path)
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read Rego module {path}: {exc.strerror}", path=policy_path) from None
    except UnicodeDecodeError:
        raise PolicyError("not UTF-8 text", path=path) from None


def _module_error(name: str, text: str, error: str, printed: str) -> PolicyError:
    position = _ERROR_POSITION.search(error)
    line = text.count("\n", 0, int(position.group(2))) + 1 if position else None
    message = _message(error) or "does not parse"
    return PolicyError(f"Rego: {message}", path=name, line=line, hint=printed.strip()[:400] or None)


def _node_errors(node: Any) -> str:
    """The messages of a rego-cpp error sequence (its children print as ``(error (errormsg N:...))``)."""
    texts = []
    for index in range(len(node)):
        try:
            texts.append(node.at(index).json())
        except Exception:  # noqa: BLE001, S112 - a foreign node API: an unreadable message is still an error
            continue
    return _message(" ".join(texts)) or "the Rego interpreter reported an error"


def _message(error: str) -> str:
    return "; ".join(dict.fromkeys(m.strip() for m in _ERROR_MESSAGE.findall(error)))


class _Captured:
    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _captured

    def read(self) -> str:
        self.file.seek(0)
        return self.file.read(8192).decode("utf-8", errors="replace")


@contextlib.contextmanager
def _captured() -> Iterator[_Captured]:
    """rego-cpp prints compile errors on stdout; capture them (they become the error's hint)."""
    captured = _Captured()
    try:
        saved = os.dup(1)
    except OSError:
        yield captured
        captured.file.close()
        return
    try:
        os.dup2(captured.file.fileno(), 1)
        yield captured
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        captured.file.close()
