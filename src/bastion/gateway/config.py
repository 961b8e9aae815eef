"""The gateway configuration file (YAML or JSON), validated with unknown fields forbidden.

Paths are relative to the configuration file. Least privilege: an identity or group with no binding may do
nothing; a binding names one environment explicitly (there is no ``*`` environment, so ``prod`` is never a
blanket grant).
"""

from __future__ import annotations

import enum
import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bastion.core.net import is_loopback_host
from bastion.errors import ConfigError
from bastion.gateway.access import Role

NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_NAME_RE = re.compile(NAME)
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}
)
SYMMETRIC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Binding(_Strict):
    role: Role
    environment: Annotated[str, Field(pattern=NAME)]
    models: tuple[str, ...] = ("*",)

    @field_validator("models")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name != "*" and not _NAME_RE.match(name):
                raise ValueError(f"bad model name {name!r}")
        return value


class Subject(_Strict):
    bindings: tuple[Binding, ...] = ()


class Bucket(_Strict):
    """A token bucket: ``capacity`` tokens, refilled at ``per_second``; a request costs its row count."""

    capacity: Annotated[float, Field(gt=0)]
    per_second: Annotated[float, Field(gt=0)]


class LimitBackend(enum.Enum):
    MEMORY = "memory"
    REDIS = "redis"


class Limits(_Strict):
    backend: LimitBackend = LimitBackend.MEMORY
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9:._-]{1,64}$")] = "bastion:gw:"
    redis_timeout_s: Annotated[float, Field(gt=0, le=10)] = 0.25
    ip: Bucket = Bucket(capacity=200, per_second=100)
    failed_auth: Bucket = Bucket(capacity=10, per_second=0.2)
    identity: Bucket = Bucket(capacity=2000, per_second=500)
    identity_model: Bucket = Bucket(capacity=1000, per_second=250)
    daily_rows: Annotated[int, Field(gt=0)] = 1_000_000
    concurrent: Annotated[int, Field(gt=0)] = 16


class OutputMode(enum.Enum):
    PROBABILITIES = "probabilities"
    TOP_K = "top-k"
    LABELS = "labels"


class Output(_Strict):
    mode: OutputMode = OutputMode.PROBABILITIES
    top_k: Annotated[int, Field(ge=1)] = 1
    round: Annotated[int, Field(ge=0, le=12)] | None = 4
    noise: Annotated[float, Field(ge=0, le=0.5)] = 0.0


class Detection(_Strict):
    """Per-identity query-stream monitoring (PRADA-style distances, near-duplicates, out-of-range rate, and
    with a training ``reference`` the out-of-distribution rate)."""

    enabled: bool = True
    window: Annotated[int, Field(ge=16, le=20_000)] = 2000
    min_queries: Annotated[int, Field(ge=8)] = 100
    check_every: Annotated[int, Field(ge=1)] = 50
    normality_threshold: Annotated[float, Field(gt=0, lt=1)] = 0.95
    duplicate_radius: Annotated[float, Field(ge=0)] = 1e-6
    duplicate_rate: Annotated[float, Field(gt=0, le=1)] = 0.5
    out_of_range_rate: Annotated[float, Field(gt=0, le=1)] = 0.3
    mean: tuple[float, ...] | None = None  # training baseline: scales distances, defines out-of-range
    std: tuple[float, ...] | None = None
    # bastion-reference/v1 JSON of the training inputs (reference.build_reference): enables ood-queries, and
    # gives mean/std when those are unset
    reference: Path | None = None
    ood_window: Annotated[int, Field(ge=20, le=20_000)] = 500  # recent rows the rate is measured over
    ood_min_rows: Annotated[int, Field(ge=10)] = 50  # no test on fewer rows
    ood_tolerance: Annotated[float, Field(ge=1, le=50)] = 2.0  # benign rows may run at this × training rate
    ood_alpha: Annotated[float, Field(gt=0, le=0.01)] = 1e-6  # one-sided binomial test, per check
    shared: bool = False  # levels in the limits' Redis, so an escalation on one replica holds on all

    @model_validator(mode="after")
    def _baseline(self) -> Detection:
        if (self.mean is None) != (self.std is None) or (self.mean and len(self.mean) != len(self.std or ())):
            raise ValueError("mean and std go together, one value per feature")
        return self


class ModelFormat(enum.Enum):
    SKLEARN_JOBLIB = "sklearn-joblib"
    SKOPS = "skops"
    ONNX = "onnx"
    LINEAR_JSON = "linear-json"


class Evidence(_Strict):
    bundle: Path
    keyring: Path | None = None
    signer: str | None = None


class UpstreamProtocol(enum.Enum):
    V1 = "v1"  # KServe V1: POST /v1/models/{name}:predict
    V2 = "v2"  # Open Inference Protocol: POST /v2/models/{name}/infer


class Upstream(_Strict):
    """A KServe V1 / Open Inference Protocol V2 server the gateway forwards validated requests to."""

    url: str  # http(s)://host[:port][/prefix]: no credentials, query or fragment
    protocol: UpstreamProtocol = UpstreamProtocol.V1
    model: Annotated[str, Field(pattern=NAME)] | None = None  # the name upstream; default: the gateway's
    timeout_s: Annotated[float, Field(gt=0, le=300)] = 10.0
    ca_file: Path | None = None  # trust only this CA bundle for https (default: the system's)
    max_response_bytes: Annotated[int, Field(gt=0)] = 8 << 20

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("upstream url must be http:// or https:// with a host")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError("upstream url must not carry credentials, a query or a fragment")
        return value.rstrip("/")


class Capture(_Strict):
    """Each served row's inputs and the model's output, as JSON Lines for the monitor (see capture.py)."""

    directory: Path
    sample: Annotated[float, Field(gt=0, le=1)] = 1.0  # the fraction of rows written
    flush_interval_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    max_buffered_rows: Annotated[int, Field(gt=0)] = 100_000  # beyond this, rows are dropped and counted


_FEATURE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")


class ModelSpec(_Strict):
    """A model served in-process (``path`` and ``format``) or proxied to an ``upstream`` server (then
    ``features`` gives its input width). ``classes`` names the columns of the probabilities of an upstream
    or ``onnx`` model; ``threads`` bounds ONNX Runtime's intra-op threads (``onnx`` only, default 1)."""

    name: Annotated[str, Field(pattern=NAME)]
    version: Annotated[str, Field(pattern=NAME)] = "1"
    environment: Annotated[str, Field(pattern=NAME)]
    path: Path | None = None
    format: ModelFormat | None = None
    upstream: Upstream | None = None
    features: Annotated[int, Field(gt=0, le=100_000)] | None = None
    classes: tuple[str | int, ...] = ()
    threads: Annotated[int, Field(ge=1, le=64)] | None = None
    # rows of concurrent requests answered by one call to an in-process model (``batching``); 0: one call each
    batch_rows: Annotated[int, Field(ge=0, le=65_536)] = 256
    feature_min: tuple[float, ...] | float = -1e6
    feature_max: tuple[float, ...] | float = 1e6
    require_evidence: Evidence | None = None
    output: Output = Output()
    output_by_role: dict[Role, Output] = {}
    detection: Detection = Detection()
    feature_names: tuple[str, ...] | None = None  # names for captured rows (default f0, f1, ...)
    capture: Capture | None = None

    @field_validator("feature_names")
    @classmethod
    def _feature_names(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None:
            if len(set(value)) != len(value) or "prediction" in value:
                raise ValueError("feature names must be unique and not 'prediction'")
            for name in value:
                if not _FEATURE.match(name):
                    raise ValueError(f"bad feature name {name!r}: a letter, then letters, digits, _ . -")
        return value

    @model_validator(mode="after")
    def _kind(self) -> ModelSpec:
        if self.upstream is None:
            if self.path is None or self.format is None:
                raise ValueError("a model needs path and format, or upstream")
            if self.features is not None:
                raise ValueError("features is for upstream models (read from the file otherwise)")
            if self.classes and self.format is not ModelFormat.ONNX:
                raise ValueError("classes is for upstream and onnx models (read from the file otherwise)")
            if self.threads is not None and self.format is not ModelFormat.ONNX:
                raise ValueError("threads is for onnx models")
        else:
            if self.path is not None or self.format is not None or self.require_evidence is not None:
                raise ValueError("an upstream model has no path, format or require_evidence")
            if self.features is None:
                raise ValueError("an upstream model needs features (its input width)")
            if self.threads is not None:
                raise ValueError("threads is for onnx models")
        return self


class JwtConfig(_Strict):
    issuer: str
    audience: str
    algorithms: tuple[str, ...]
    jwks_file: Path | None = None
    jwks_url: str | None = None  # https (plain http on loopback only); fetched lazily, cached
    jwks_ttl_s: Annotated[float, Field(gt=0, le=86_400)] = 300.0
    jwks_refresh_interval_s: Annotated[float, Field(ge=0, le=3600)] = 30.0  # least time between fetches
    jwks_timeout_s: Annotated[float, Field(gt=0, le=30)] = 3.0
    jwks_max_bytes: Annotated[int, Field(gt=0, le=1 << 22)] = 256 * 1024
    jwks_ca_file: Path | None = None
    secret_env: str | None = None
    leeway_s: Annotated[int, Field(ge=0, le=300)] = 30
    max_token_bytes: Annotated[int, Field(gt=0)] = 8192

    @model_validator(mode="after")
    def _keys(self) -> JwtConfig:
        algs = set(self.algorithms)
        if not algs or not algs <= ASYMMETRIC_ALGORITHMS | SYMMETRIC_ALGORITHMS:
            known = sorted(ASYMMETRIC_ALGORITHMS | SYMMETRIC_ALGORITHMS)
            raise ValueError(f"algorithms must be a non-empty subset of {known} ('none' is never accepted)")
        if algs & SYMMETRIC_ALGORITHMS and algs & ASYMMETRIC_ALGORITHMS:
            raise ValueError("do not mix HMAC and public-key algorithms (key confusion)")
        if algs & SYMMETRIC_ALGORITHMS and not self.secret_env:
            raise ValueError("HS* algorithms need secret_env")
        if algs & ASYMMETRIC_ALGORITHMS and (self.jwks_file is None) == (self.jwks_url is None):
            raise ValueError("public-key algorithms need one of jwks_file or jwks_url")
        if self.jwks_url is not None:
            from urllib.parse import urlsplit

            parts = urlsplit(self.jwks_url)
            if (
                parts.scheme not in ("https", "http")
                or not parts.hostname
                or parts.username
                or parts.password
            ):
                raise ValueError("jwks_url must be an https:// URL without credentials")
            if parts.scheme == "http" and not is_loopback_host(parts.hostname):
                raise ValueError("jwks_url must use https (plain http only on a loopback address)")
        return self


class Auth(_Strict):
    api_keys_file: Path | None = None
    jwt: JwtConfig | None = None
    groups_claim: str = "groups"
    # mTLS: a verified client certificate's subject (RFC 4514, e.g. "CN=svc-a,O=Acme") -> identity
    client_certificates: dict[str, Annotated[str, Field(pattern=NAME)]] = {}


class AuditSinkKind(enum.Enum):
    FILE = "file"
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


class Audit(_Strict):
    """Where the hash-chained audit records go: a JSON Lines file, a SQLite file, or a PostgreSQL table."""

    sink: AuditSinkKind = AuditSinkKind.FILE
    path: Path = Path("audit.jsonl")  # the JSON Lines file, or the SQLite database file
    url: str | None = None  # postgresql://user@host:5432/db (driver: pg8000)
    table: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")] = "bastion_audit"
    fsync: bool = False  # file sink only; database sinks commit every record

    @model_validator(mode="after")
    def _target(self) -> Audit:
        if self.sink is AuditSinkKind.POSTGRESQL and not (self.url and self.url.startswith("postgres")):
            raise ValueError("sink postgresql needs url: postgresql://user@host:5432/database")
        if self.sink is not AuditSinkKind.FILE and self.fsync:
            raise ValueError("fsync is for the file sink; database sinks commit every record")
        if self.sink is not AuditSinkKind.POSTGRESQL and self.url is not None:
            raise ValueError("url is only for sink postgresql")
        if self.sink is AuditSinkKind.SQLITE and self.path.suffix == ".jsonl":
            raise ValueError("sink sqlite: set path to the database file, e.g. audit.db")
        return self

    def database_url(self) -> str | None:
        """The SQLAlchemy URL of a database sink; None for the file sink."""
        if self.sink is AuditSinkKind.SQLITE:
            return f"sqlite:///{self.path}"
        return self.url


class Server(_Strict):
    environment: Annotated[str, Field(pattern=NAME)]
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    trusted_proxies: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    max_body_bytes: Annotated[int, Field(gt=0)] = 1 << 20
    max_rows: Annotated[int, Field(gt=0)] = 512
    read_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    header_timeout_s: Annotated[float, Field(gt=0)] = 10.0
    secret_env: str = "BASTION_GATEWAY_SECRET"  # noqa: S105 - the *name* of an environment variable
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # mTLS: require a client certificate issued by this CA bundle
    tls_client_crl: Path | None = None  # mTLS: the CA's revocation lists (PEM); revoked or unlisted: refused

    @model_validator(mode="after")
    def _tls(self) -> Server:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (mTLS) needs tls_cert and tls_key")
        if self.tls_client_crl is not None and self.tls_client_ca is None:
            raise ValueError("tls_client_crl needs tls_client_ca (the CA whose revocations it lists)")
        return self

    @field_validator("trusted_proxies", "allow", "deny")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)
        return value


class GatewayConfig(_Strict):
    version: Literal[1] = 1
    server: Server
    auth: Auth = Auth()
    identities: dict[str, Subject] = {}
    groups: dict[str, Subject] = {}
    limits: Limits = Limits()
    audit: Audit = Audit()
    models: tuple[ModelSpec, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> GatewayConfig:
        names = [m.name for m in self.models]
        if len(names) != len(set(names)):
            raise ValueError("model names must be unique")
        for name in [*self.identities, *self.groups]:
            if not _NAME_RE.match(name):
                raise ValueError(f"bad identity or group name {name!r}")
        if any(m.detection.shared for m in self.models) and self.limits.backend is not LimitBackend.REDIS:
            raise ValueError("detection.shared needs limits.backend: redis (the levels live there)")
        return self


def _rebase(data: dict[str, Any], base: Path) -> None:
    """Make every relative path in the document relative to the configuration file's folder."""

    def fix(value: Any) -> Any:
        return str(base / value) if isinstance(value, str) and not Path(value).is_absolute() else value

    for section, keys in (
        ("auth", ("api_keys_file",)),
        ("audit", ("path",)),
        ("server", ("tls_cert", "tls_key", "tls_client_ca", "tls_client_crl")),
    ):
        block = data.get(section)
        if isinstance(block, dict):
            for key in keys:
                if key in block:
                    block[key] = fix(block[key])
    jwt = (data.get("auth") or {}).get("jwt") if isinstance(data.get("auth"), dict) else None
    if isinstance(jwt, dict):
        for key in ("jwks_file", "jwks_ca_file"):
            if key in jwt:
                jwt[key] = fix(jwt[key])
    for model in data.get("models") or []:
        if isinstance(model, dict):
            if "path" in model:
                model["path"] = fix(model["path"])
            upstream = model.get("upstream")
            if isinstance(upstream, dict) and "ca_file" in upstream:
                upstream["ca_file"] = fix(upstream["ca_file"])
            capture = model.get("capture")
            if isinstance(capture, dict) and "directory" in capture:
                capture["directory"] = fix(capture["directory"])
            detection = model.get("detection")
            if isinstance(detection, dict) and "reference" in detection:
                detection["reference"] = fix(detection["reference"])
            evidence = model.get("require_evidence")
            if isinstance(evidence, dict):
                for key in ("bundle", "keyring"):
                    if key in evidence:
                        evidence[key] = fix(evidence[key])


def parse_config(data: Any, *, base: Path) -> GatewayConfig:
    if not isinstance(data, dict):
        raise ConfigError("gateway configuration must be a mapping")
    _rebase(data, base)
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:8])
        raise ConfigError(f"invalid gateway configuration: {details}") from None


def load_config(path: Path) -> GatewayConfig:
    """Read a YAML or JSON configuration file (YAML is a superset of JSON)."""
    import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs; only safe_load is used

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(data, base=path.resolve().parent)
