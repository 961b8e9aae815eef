"""Credentials: API keys (shown once, stored as SHA-256, compared in constant time, expiring, revocable)
and JWTs from an OIDC issuer (allowlisted algorithms only; ``exp``, ``iss``, ``aud`` and ``sub`` required).

Public keys come from a JWKS file, or from a JWKS URL: fetched when first needed, kept for ``jwks_ttl_s``,
fetched again early when a token names an unknown ``kid`` (at most once per ``jwks_refresh_interval_s``),
with a timeout and a size bound. It fails closed: keys past their TTL that cannot be refreshed are dropped,
and JWTs are refused until the URL answers again.

API keys look like ``bst_<id>_<secret>``: the id finds the record, the secret (256 bits) is never stored.
A fast hash is right here: the secret is random, not a password, so there is nothing to brute-force.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import math
import os
import re
import secrets
import ssl
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bastion.errors import ConfigError, UsageError
from bastion.gateway.config import JwtConfig

log = logging.getLogger("bastion.gateway")
KEY_RE = re.compile(r"^bst_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_DUMMY = hashlib.sha256(b"bastion-dummy").hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ApiKeyRecord:
    id: str
    identity: str
    sha256: str
    created: str
    expires: str | None = None
    revoked: str | None = None
    note: str = ""

    def usable(self, at: dt.datetime) -> bool:
        if self.revoked is not None:
            return False
        return self.expires is None or dt.datetime.fromisoformat(self.expires) > at


class ApiKeyStore:
    """The key file (JSON, mode 0600). Reloaded when it changes on disk, so a revocation takes effect live."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._records: dict[str, ApiKeyRecord] = {}

    def _load(self) -> dict[str, ApiKeyRecord]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._records = None, {}
            return self._records
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return self._records
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            records = {r["id"]: ApiKeyRecord(**r) for r in data["keys"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{self.path}: malformed API key file ({type(exc).__name__})") from None
        self._stamp, self._records = stamp, records
        return records

    def records(self) -> list[ApiKeyRecord]:
        with self._lock:
            return sorted(self._load().values(), key=lambda r: (r.identity, r.created, r.id))

    def _write(self, records: dict[str, ApiKeyRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        payload = {"version": 1, "keys": [asdict(r) for r in records.values()]}
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2)
        os.replace(tmp, self.path)
        self._stamp = None

    def create(
        self, identity: str, *, expires_in: dt.timedelta | None = None, note: str = ""
    ) -> tuple[str, ApiKeyRecord]:
        """Make a key for ``identity``; the returned secret is shown once and never stored."""
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", identity):
            raise UsageError(f"bad identity name {identity!r}")
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        token = f"bst_{key_id}_{secret}"
        now = _now()
        record = ApiKeyRecord(
            id=key_id,
            identity=identity,
            sha256=hashlib.sha256(secret.encode()).hexdigest(),
            created=_iso(now),
            expires=_iso(now + expires_in) if expires_in else None,
            note=note,
        )
        with self._lock:
            records = dict(self._load())
            records[key_id] = record
            self._write(records)
        return token, record

    def revoke(self, key_id: str) -> ApiKeyRecord:
        with self._lock:
            records = dict(self._load())
            if key_id not in records:
                raise UsageError(f"no API key with id {key_id!r}")
            record = replace(records[key_id], revoked=_iso(_now()))
            records[key_id] = record
            self._write(records)
        return record

    def authenticate(self, token: str) -> ApiKeyRecord | None:
        """The usable record this token opens, or None. Constant-time on the secret."""
        match = KEY_RE.match(token)
        if match is None:
            return None
        key_id, secret = match.groups()
        digest = hashlib.sha256(secret.encode()).hexdigest()
        with self._lock:
            record = self._load().get(key_id)
        expected = record.sha256 if record is not None else _DUMMY
        if not hmac.compare_digest(digest, expected) or record is None:
            return None
        return record if record.usable(_now()) else None


@dataclass(frozen=True)
class JwtClaims:
    subject: str
    groups: tuple[str, ...]
    key_id: str


class JwtVerifier:
    """Verify a JWT against the configured issuer, audience, algorithm allowlist and keys."""

    def __init__(self, config: JwtConfig, groups_claim: str) -> None:
        import jwt

        self.config = config
        self.groups_claim = groups_claim
        self._keys: dict[str, Any] = {}
        self._fetched = -math.inf  # when the keys at the URL were last fetched (monotonic)
        self._tried = -math.inf  # when a fetch was last attempted
        self._lock: asyncio.Lock | None = None
        self._secret: bytes | None = None
        if config.jwks_file is not None:
            try:
                jwks = jwt.PyJWKSet.from_json(config.jwks_file.read_text(encoding="utf-8"))
            except (OSError, jwt.PyJWTError) as exc:
                raise ConfigError(f"{config.jwks_file}: unusable JWKS ({type(exc).__name__})") from None
            self._keys = {k.key_id or "": k for k in jwks.keys}
        if config.secret_env is not None:
            value = os.environ.get(config.secret_env, "")
            if len(value) < 32:
                raise ConfigError(f"${config.secret_env} must hold an HMAC secret of at least 32 characters")
            self._secret = value.encode()

    # -- JWKS URL ------------------------------------------------------------------------------------------
    def _stale(self, token: str) -> bool:
        """Whether the keys at the URL should be fetched before ``token`` is checked."""
        if self.config.jwks_url is None:
            return False
        now = time.monotonic()
        if now - self._tried < self.config.jwks_refresh_interval_s:
            return False  # bounded: an unknown kid or a failing URL cannot make every request fetch
        if now - self._fetched >= self.config.jwks_ttl_s:
            return True
        import jwt

        try:
            kid = str(jwt.get_unverified_header(token).get("kid") or "")
        except jwt.PyJWTError:
            return False
        return kid not in self._keys

    async def _fetch(self) -> None:
        import httpx
        import jwt

        assert self.config.jwks_url is not None
        self._tried = time.monotonic()
        verify: ssl.SSLContext | bool = True
        if self.config.jwks_ca_file is not None:
            verify = ssl.create_default_context(cafile=str(self.config.jwks_ca_file))
        limit = self.config.jwks_max_bytes
        try:
            async with (
                httpx.AsyncClient(
                    timeout=self.config.jwks_timeout_s, verify=verify, trust_env=False, follow_redirects=False
                ) as client,
                client.stream("GET", self.config.jwks_url, headers={"Accept": "application/json"}) as r,
            ):
                if r.status_code != 200:
                    raise ValueError(f"status {r.status_code}")
                body = b""
                async for chunk in r.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise ValueError(f"larger than {limit} bytes")
            keys = {k.key_id or "": k for k in jwt.PyJWKSet.from_json(body.decode("utf-8")).keys}
        except (httpx.HTTPError, ValueError, jwt.PyJWTError, UnicodeDecodeError) as exc:
            log.error("JWKS %s unusable (%s): %s", self.config.jwks_url, type(exc).__name__, exc)
            if time.monotonic() - self._fetched >= self.config.jwks_ttl_s:
                self._keys = {}  # fail closed: no key outlives its TTL
            return
        self._keys, self._fetched = keys, time.monotonic()

    async def prepare(self, token: str) -> None:
        """Fetch the keys at the JWKS URL when they are missing, expired, or lack the token's ``kid``."""
        if not self._stale(token):
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._stale(token):  # another request may have fetched them meanwhile
                await self._fetch()

    def verify(self, token: str) -> JwtClaims | None:
        import jwt

        if len(token) > self.config.max_token_bytes:
            return None
        if self.config.jwks_url is not None and time.monotonic() - self._fetched >= self.config.jwks_ttl_s:
            return None  # keys past their TTL are not trusted
        try:
            header = jwt.get_unverified_header(token)
            alg = header.get("alg")
            if alg not in self.config.algorithms:
                return None
            kid = str(header.get("kid") or "")
            if self._secret is not None:
                key: Any = self._secret
            else:
                jwk = self._keys.get(kid)
                if jwk is None or (jwk.algorithm_name not in (alg, None)):
                    return None
                key = jwk.key
            claims = jwt.decode(
                token,
                key,
                algorithms=list(self.config.algorithms),
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError:
            return None
        groups = claims.get(self.groups_claim, [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            groups = []
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            return None
        return JwtClaims(subject=subject, groups=tuple(groups), key_id=kid)


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")
