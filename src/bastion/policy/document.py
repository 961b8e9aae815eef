"""Policy documents: YAML that selects rules, sets their level per environment, and carries waivers.

    apiVersion: bastion/v1
    kind: Policy
    name: prod-models
    modules: [license.rego]          # your own Rego, relative to this file
    advisories: osv/snapshot.json    # optional: the offline OSV snapshot (bastion advisories import)
    rules:
      - id: signed-by-trusted-key    # a built-in rule (see bastion.policy.builtin)
        level: error                 # error | warning | off  (default error)
        environments: {dev: warning} # per-environment override of the level
        params: {signers: [release]}
      - id: mit-only
        package: hf.license_mit      # a rule of your own: a Rego package in one of the modules
    waivers:
      - rule: no-findings-above
        reason: false positive in the tokenizer, see SEC-123
        owner: alice@example.com
        expires: 2026-03-31
        subject: sha256:9a1e...      # optional: only this artifact
        environments: [dev]          # optional: only there

Unknown fields are refused, and every error names the file and line. Parsing reads YAML nodes (no
Python objects are ever constructed from tags).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from bastion.policy.errors import PolicyError

API_VERSION = "bastion/v1"
MAX_POLICY_BYTES = 1024 * 1024
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
_PACKAGE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


_PLAIN_TAGS = {
    f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp")
}


class Environment(enum.Enum):
    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"


class Level(enum.Enum):
    ERROR = "error"
    WARNING = "warning"
    OFF = "off"


@dataclass(frozen=True)
class RuleSpec:
    id: str
    package: str
    builtin: bool
    level: Level
    environments: tuple[tuple[Environment, Level], ...]
    params: dict[str, Any]
    remediation: str | None
    line: int

    def level_for(self, env: Environment) -> Level:
        return dict(self.environments).get(env, self.level)


@dataclass(frozen=True)
class Waiver:
    rule: str
    reason: str
    owner: str
    expires: dt.date
    subject: str | None
    environments: tuple[Environment, ...]
    line: int

    def applies(self, rule: str, subject_digest: str, env: Environment, today: dt.date) -> bool:
        """Expired waivers never apply: ``expires`` is the last day the waiver is valid (UTC)."""
        return (
            self.rule == rule
            and today <= self.expires
            and (self.subject is None or self.subject == subject_digest)
            and (not self.environments or env in self.environments)
        )


@dataclass(frozen=True)
class Policy:
    name: str
    path: Path
    rules: tuple[RuleSpec, ...]
    waivers: tuple[Waiver, ...]
    modules: tuple[Path, ...]
    advisories: Path | None
    description: str = ""
    sha256: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def load_policy(path: Path) -> Policy:
    """Read and check a policy file; raises ``PolicyError`` naming the file and line."""
    import hashlib

    import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs

    try:
        if path.stat().st_size > MAX_POLICY_BYTES:
            raise PolicyError(f"larger than {MAX_POLICY_BYTES} bytes", path=path)
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"cannot read the policy: {exc.strerror}", path=path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError("not UTF-8 text", path=path) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"not valid YAML: {problem}", path=path, line=line) from None
    if root is None:
        raise PolicyError("the policy is empty", path=path)
    reader = _Reader(path)
    doc = reader.mapping(
        root,
        "the policy",
        required={"apiVersion", "kind", "name", "rules"},
        optional={"description", "modules", "advisories", "waivers"},
    )
    if reader.scalar(doc["apiVersion"], "apiVersion") != API_VERSION:
        reader.fail(doc["apiVersion"], f"apiVersion must be {API_VERSION!r}")
    if reader.scalar(doc["kind"], "kind") != "Policy":
        reader.fail(doc["kind"], "kind must be 'Policy'")
    name = reader.scalar(doc["name"], "name")
    modules = tuple(
        reader.relative(m, "a module path") for m in reader.sequence(doc.get("modules"), "modules")
    )
    advisories = reader.relative(doc["advisories"], "advisories") if "advisories" in doc else None
    rules = tuple(reader.rule(node) for node in reader.sequence(doc["rules"], "rules"))
    if not rules:
        reader.fail(doc["rules"], "a policy needs at least one rule (an empty policy would allow anything)")
    seen: dict[str, int] = {}
    for rule in rules:
        if rule.id in seen:
            raise PolicyError(
                f"rule {rule.id!r} is listed twice (first on line {seen[rule.id]})", path=path, line=rule.line
            )
        seen[rule.id] = rule.line
    waivers = tuple(reader.waiver(node) for node in reader.sequence(doc.get("waivers"), "waivers"))
    for waiver in waivers:
        if waiver.rule not in seen:
            raise PolicyError(
                f"the waiver names rule {waiver.rule!r}, which the policy does not use",
                path=path,
                line=waiver.line,
            )
    description = reader.scalar(doc["description"], "description") if "description" in doc else ""
    return Policy(
        name, path, rules, waivers, modules, advisories, description, hashlib.sha256(raw).hexdigest()
    )


class _Reader:
    """Typed access to YAML nodes, failing with the file and line of the offending node."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node: Any, message: str) -> NoReturn:
        raise PolicyError(message, path=self.path, line=node.start_mark.line + 1)

    def mapping(self, node: Any, what: str, *, required: set[str], optional: set[str]) -> dict[str, Any]:
        import yaml

        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"{what} must be a mapping")
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node, "a key")
            if key not in required | optional:
                allowed = ", ".join(sorted(required | optional))
                self.fail(key_node, f"unknown field {key!r} in {what} (allowed: {allowed})")
            if key in result:
                self.fail(key_node, f"field {key!r} is given twice in {what}")
            result[key] = value_node
        missing = sorted(required - set(result))
        if missing:
            self.fail(node, f"{what} is missing {', '.join(repr(m) for m in missing)}")
        return result

    def sequence(self, node: Any, what: str) -> list[Any]:
        import yaml

        if node is None:
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, f"{what} must be a list")
        return list(node.value)

    def scalar(self, node: Any, what: str) -> str:
        import yaml

        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            self.fail(node, f"{what} must be a non-empty string")
        return str(node.value)

    def relative(self, node: Any, what: str) -> Path:
        return (self.path.parent / self.scalar(node, what)).resolve()

    def enum(self, node: Any, kind: type[enum.Enum], what: str) -> Any:
        value = self.scalar(node, what)
        try:
            return kind(value)
        except ValueError:
            choices = ", ".join(m.value for m in kind)
            self.fail(node, f"{what} must be one of {choices}, not {value!r}")

    def rule(self, node: Any) -> RuleSpec:
        from bastion.policy.builtin import BUILTIN_RULES

        fields = self.mapping(
            node,
            "a rule",
            required={"id"},
            optional={"level", "environments", "params", "package", "remediation"},
        )
        rule_id = self.scalar(fields["id"], "id")
        if not _ID.match(rule_id):
            self.fail(fields["id"], f"rule id {rule_id!r} must be lowercase letters, digits and dashes")
        if "package" in fields:
            package = self.scalar(fields["package"], "package")
            if not _PACKAGE.match(package) or package.startswith("bastion."):
                self.fail(fields["package"], f"{package!r} is not a usable Rego package name")
            builtin = False
        elif rule_id in BUILTIN_RULES:
            package, builtin = BUILTIN_RULES[rule_id], True
        else:
            self.fail(
                fields["id"],
                f"{rule_id!r} is not a built-in rule; a rule of your own needs "
                f"'package' (built-ins: {', '.join(sorted(BUILTIN_RULES))})",
            )
        level = self.enum(fields["level"], Level, "level") if "level" in fields else Level.ERROR
        overrides: list[tuple[Environment, Level]] = []
        if "environments" in fields:
            envs = self.mapping(
                fields["environments"],
                "environments",
                required=set(),
                optional={e.value for e in Environment},
            )
            overrides = [(Environment(k), self.enum(v, Level, f"the {k} level")) for k, v in envs.items()]
        params = self.plain(fields["params"]) if "params" in fields else {}
        if not isinstance(params, dict):
            self.fail(fields["params"], "params must be a mapping")
        remediation = self.scalar(fields["remediation"], "remediation") if "remediation" in fields else None
        return RuleSpec(
            rule_id, package, builtin, level, tuple(overrides), params, remediation, node.start_mark.line + 1
        )

    def waiver(self, node: Any) -> Waiver:
        fields = self.mapping(
            node,
            "a waiver",
            required={"rule", "reason", "owner", "expires"},
            optional={"subject", "environments"},
        )
        expires_text = self.scalar(fields["expires"], "expires")
        try:
            expires = dt.date.fromisoformat(expires_text)
        except ValueError:
            self.fail(fields["expires"], f"expires must be a date like 2026-03-31, not {expires_text!r}")
        reason = self.scalar(fields["reason"], "reason")
        if len(reason.strip()) < 8:
            self.fail(fields["reason"], "a waiver needs a real reason (at least 8 characters)")
        subject = self.scalar(fields["subject"], "subject") if "subject" in fields else None
        if subject is not None and not re.match(r"^sha256:[0-9a-f]{64}$", subject):
            self.fail(fields["subject"], "subject must be a digest like sha256:<64 hex digits>")
        envs = tuple(
            self.enum(e, Environment, "an environment")
            for e in self.sequence(fields.get("environments"), "environments")
        )
        return Waiver(
            self.scalar(fields["rule"], "rule"),
            reason,
            self.scalar(fields["owner"], "owner"),
            expires,
            subject,
            envs,
            node.start_mark.line + 1,
        )

    def plain(self, node: Any) -> Any:
        """Rule parameters as JSON-like values: strings, numbers, booleans, lists and mappings."""
        import yaml

        if node.tag not in _PLAIN_TAGS:
            self.fail(node, f"unsupported YAML tag {node.tag!r} in params")
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                result[self.scalar(key_node, "a parameter name")] = self.plain(value_node)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.plain(v) for v in node.value]
        value = yaml.safe_load(yaml.serialize(node))
        if isinstance(value, bool | int | str) or value is None:
            return value
        if isinstance(value, float | dt.date):
            return str(value)
        self.fail(node, "unsupported parameter value")
