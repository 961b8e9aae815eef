"""Hard-coded secrets in decoded text: cloud keys, tokens, private keys, URLs with passwords, JWTs, and
high-entropy values assigned to secret-like names.

Patterns live in ``secret_rules.toml``; each match must pass structural validation (format, length,
entropy, a decodable JWT header...) and a placeholder filter (``EXAMPLE`` keys, templates, masks,
UUIDs, digests), so look-alikes are not reported. Callers hand in *decoded* text (a notebook cell,
not its JSON-escaped form) and map offsets back to lines. Secret values never leave this module
unmasked.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import tomllib
from dataclasses import dataclass
from importlib import resources

from bastion.core import Category, Severity
from bastion.scanners.interface import Rule, rule
from bastion.scanners.workspace.text import (
    char_classes,
    entropy,
    is_hash_like,
    is_placeholder,
    is_uuid,
    mask,
)

REMEDIATION = (
    "Revoke and rotate the credential now (it is in the file and in version-control history), remove it, "
    "and inject it at run time as an environment variable from a secrets manager: store the new value "
    "with `bastion secrets set NAME --from-stdin` and start the program with `bastion secrets run -- CMD`."
)
_ATLAS = ("AML.T0055", "AML.M0005")
_CWE = ("CWE-798",)


@dataclass(frozen=True)
class _Pattern:
    rule: Rule
    keywords: tuple[str, ...]
    regex: re.Pattern[str]
    keep_prefix: int
    min_entropy: float
    validator: str | None


def _load_patterns() -> tuple[_Pattern, ...]:
    raw = tomllib.loads(
        resources.files("bastion.scanners.workspace").joinpath("secret_rules.toml").read_text("utf-8")
    )
    out = []
    for entry in raw["rule"]:
        r = rule(
            entry["id"],
            entry["kind"],
            Severity.parse(entry["severity"]),
            entry["title"],
            REMEDIATION,
            atlas=_ATLAS,
            cwe=_CWE,
            category=Category.SECRET,
        )
        out.append(
            _Pattern(
                rule=r,
                keywords=tuple(entry["keywords"]),
                regex=re.compile(entry["regex"]),
                keep_prefix=int(entry.get("keep_prefix", 0)),
                min_entropy=float(entry.get("min_entropy", 0.0)),
                validator=entry.get("validator"),
            )
        )
    return tuple(out)


PATTERNS = _load_patterns()

GENERIC = rule(
    "BAS-S013",
    "generic-secret",
    Severity.HIGH,
    "High-entropy value assigned to a secret-like name (password, token, api key...)",
    REMEDIATION,
    atlas=_ATLAS,
    cwe=_CWE,
    category=Category.SECRET,
)

_NAMES_RE = (
    r"(?:passwd|password|passphrase|pass(?![a-z])|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key"
    r"|client[_-]?secret|auth[_-]?key|authorization|credentials?|signing[_-]?key|encryption[_-]?key"
    r"|master[_-]?key)"
)
# name (optionally quoted, as a dict key) then = / : / := then a quoted or (outside code) bare value
_GENERIC = re.compile(
    r"(?<![A-Za-z0-9_.-])(?P<name>[A-Za-z0-9_.-]{0,40}?" + _NAMES_RE + r"[A-Za-z0-9_]{0,20})"
    r"(?P<nq>[\"']?)\s*(?::=|=|:|=>)\s*(?:(?P<q>[\"'])(?P<qv>[^\"'\n\r\\]{8,256})(?P=q)"
    r"|(?P<bv>[^\s\"',;#`(){}\[\]][^\s\"',;`(){}\[\]]{7,255})(?=\s|$|[,;]))",
    re.IGNORECASE,
)
_GENERIC_KEYWORDS = ("pass", "pwd", "secret", "token", "key", "credential", "authorization")
_AUTH_SCHEME = re.compile(r"^(?:bearer|basic|token|apikey)\s+", re.IGNORECASE)
_NOT_SECRET_NAME = re.compile(
    r"token(?:izer|s\b|_?count|_?len|_?id|_?type|_?limit|_?usage|_?ids)|max_?tokens|num_?tokens|_?tokens_"
    r"|key_?(?:id|name|path|file|size|len|col|column|field|fn|func)|(?:path|file|dir|url)$|_env$|_var$"
    r"|keyword|monkey|hotkey|sort_?key|primary_?key|foreign_?key|key_?value|dict_?key|cache_?key|_keys$"
    r"|(?:_|\b)(?:name|arn|id|ref|version|prefix|suffix|header|param|field|label|method|type|mode)$",
    re.IGNORECASE,
)
_CODE_VALUE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*\.)+[A-Za-z_][A-Za-z0-9_]*$|^[a-z_]+$|^[A-Z_]+$")


@dataclass(frozen=True)
class SecretHit:
    """A validated secret in a text: where it is (offsets of the secret itself), which rule, masked value."""

    rule: Rule
    start: int
    end: int
    masked: str
    severity: Severity

    @property
    def message(self) -> str:
        return f"{self.rule.title}: {self.masked}"


def _b64url(part: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        return None


def _validate(p: _Pattern, m: re.Match[str], secret: str) -> Severity | None:
    """The severity for a structurally valid secret, or None for a look-alike."""
    severity = p.rule.severity
    if p.validator == "aws_key_id":
        if "EXAMPLE" in secret or is_placeholder(secret[4:]):
            return None
    elif p.validator == "stripe":
        if "_test_" in secret:
            severity = Severity.LOW  # test-mode keys reach no real money, but they are still credentials
    elif p.validator == "url_password":
        user = m.group("user")
        if (
            is_placeholder(secret)
            or secret.lower() in _URL_PLACEHOLDERS
            or secret == user
            or secret.startswith(("$", "%", "<", "{"))
            or "@" in user
        ):
            return None
        if m.group("url").lower().startswith("http") and entropy(secret) < 2.5:
            return None
        return severity
    elif p.validator == "jwt":
        header = _b64url(secret.split(".", 1)[0])
        try:
            parsed = json.loads(header) if header else None
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(parsed, dict) or "alg" not in parsed:
            return None
    body = secret[p.keep_prefix :]
    if p.min_entropy and entropy(body) < p.min_entropy:
        return None
    if p.validator != "aws_key_id" and p.rule.kind != "private-key" and is_placeholder(body):
        return None
    return severity


_URL_PLACEHOLDERS = frozenset(
    {"password", "pass", "passwd", "pwd", "secret", "pw", "xxx", "****", "changeme", "test", "admin"}
)


def _generic_value_ok(name: str, value: str, text: str, end: int) -> bool:
    if _NOT_SECRET_NAME.search(name):
        return False
    if is_placeholder(value) or is_uuid(value) or (is_hash_like(value) and "hash" in name.lower()):
        return False
    if value.startswith(("./", "../", "~/", "http://", "https://", "file:", "s3://", "gs://")):
        return False
    if value.startswith("/") and (len(value) < 30 or "." in value or entropy(value) < 4.5):
        return False  # a path; a 40-character AWS secret key may start with "/" too
    if value.isdigit() or _CODE_VALUE.match(value):
        return False
    if text[end : end + 1] == "(":
        return False
    if char_classes(value) < 2 and len(value) < 20:
        return False
    threshold = 2.5 if len(value) < 16 else 3.0
    return entropy(value) >= threshold


def find_secrets(text: str, *, code: bool = False) -> list[SecretHit]:
    """Every validated secret in ``text``. ``code``: bare (unquoted) assignments are code, not values."""
    hits: list[SecretHit] = []
    claimed: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in claimed)

    for p in PATTERNS:
        if not any(k in text for k in p.keywords):
            continue
        for m in p.regex.finditer(text):
            secret = m.group("secret")
            start, end = m.span("secret")
            if not free(start, end):
                continue
            severity = _validate(p, m, secret)
            if severity is None:
                continue
            claimed.append((start, end))
            hits.append(SecretHit(p.rule, start, end, mask(secret, p.keep_prefix), severity))
    low = text.lower()
    if any(k in low for k in _GENERIC_KEYWORDS):
        for m in _GENERIC.finditer(text):
            group = "qv" if m.group("qv") is not None else "bv"
            if group == "bv" and code:
                continue
            value = m.group(group)
            start, end = m.span(group)
            scheme = _AUTH_SCHEME.match(value)
            if scheme:
                value, start = value[scheme.end() :], start + scheme.end()
            if not free(start, end) or not _generic_value_ok(m.group("name"), value, text, end):
                continue
            claimed.append((start, end))
            hits.append(
                SecretHit(GENERIC, start, end, f"{m.group('name')} = {mask(value)}", GENERIC.severity)
            )
    hits.sort(key=lambda h: h.start)
    return hits
