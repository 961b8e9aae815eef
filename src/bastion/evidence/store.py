"""The evidence store: content-addressed bundle blobs plus an index by subject, predicate and time.

Embedded default: SQLite at ``$BASTION_HOME/evidence.db``. Set ``BASTION_DATABASE_URL``
(``postgresql://user@host/db``) to share one store on PostgreSQL. SQLAlchemy Core, no ORM.

Blobs are the exact bundle bytes, keyed by their SHA-256, so an attestation exported and imported
again is byte-identical and stored once. The index is derived from the blob and can be rebuilt.
Nothing here trusts a stored bundle: ``bastion verify`` checks signatures every time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.errors import ConfigError, UsageError
from bastion.evidence.bundle import Bundle, parse_bundles
from bastion.evidence.errors import BundleFormatError
from bastion.evidence.keys import home, iso, now_utc
from bastion.evidence.statement import Statement

if TYPE_CHECKING:
    from sqlalchemy import Engine, Table


@dataclass(frozen=True)
class StoredAttestation:
    id: str  # sha256 of the bundle bytes
    predicate_type: str
    subject_name: str
    subject_digests: tuple[str, ...]  # "sha256:..."
    key_id: str
    target: str
    created_at: str


def database_url() -> str:
    url = os.environ.get("BASTION_DATABASE_URL")
    if not url:
        return f"sqlite:///{home() / 'evidence.db'}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+pg8000://" + url.split("://", 1)[1]  # pg8000: BSD-licensed, pure Python
    return url


class EvidenceStore:
    def __init__(self, url: str | None = None, *, prefix: str = "bastion_") -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.exc import SQLAlchemyError

        self.url = url or database_url()
        if self.url.startswith("sqlite:///"):
            Path(self.url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self.engine: Engine = create_engine(self.url)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise ConfigError(f"cannot use the evidence database {self._safe_url()}: {exc}") from None
        self._tables = _tables(prefix)
        try:
            self._tables["blobs"].metadata.create_all(self.engine)
        except SQLAlchemyError as exc:
            raise ConfigError(
                f"cannot open the evidence database {self._safe_url()}: {exc.__class__.__name__}"
            ) from None

    def _safe_url(self) -> str:
        from sqlalchemy.engine import make_url

        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - only for an error message: never echo a password
            return "(unparseable URL)"

    def close(self) -> None:
        self.engine.dispose()

    def drop(self) -> None:
        """Remove this store's tables (tests use a unique prefix per run)."""
        self._tables["blobs"].metadata.drop_all(self.engine)

    # writing
    def add(self, bundle_bytes: bytes, *, target: str = "") -> StoredAttestation:
        """Index one bundle (idempotent: the same bytes are stored once)."""
        from sqlalchemy import insert, select

        (bundle,) = parse_bundles(bundle_bytes, source="bundle")
        statement = Statement.from_bytes(bundle.envelope.payload)
        record = _record(bundle_bytes, bundle, statement, target)
        t = self._tables
        with self.engine.begin() as db:
            if db.execute(select(t["attestations"].c.id).where(t["attestations"].c.id == record.id)).first():
                return self.get(record.id)
            db.execute(
                insert(t["blobs"]).values(digest=record.id, size=len(bundle_bytes), content=bundle_bytes)
            )
            db.execute(
                insert(t["attestations"]).values(
                    id=record.id,
                    predicate_type=record.predicate_type,
                    subject_name=record.subject_name,
                    key_id=record.key_id,
                    target=record.target,
                    created_at=record.created_at,
                )
            )
            db.execute(
                insert(t["subjects"]),
                [
                    {"attestation_id": record.id, "name": s.name, "algorithm": d.algorithm, "digest": d.hex}
                    for s in statement.subjects
                    for d in s.digests
                ],
            )
        return record

    def import_file(self, path: Path) -> list[StoredAttestation]:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BundleFormatError(f"cannot read {path}: {exc.strerror}") from None
        bundles = parse_bundles(data, source=str(path))
        return [self.add(b.to_json() if len(bundles) > 1 else data.strip()) for b in bundles]

    # reading
    def query(
        self,
        *,
        digest: str | None = None,
        name: str | None = None,
        predicate_type: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int | None = None,
    ) -> list[StoredAttestation]:
        from sqlalchemy import select

        a, s = self._tables["attestations"], self._tables["subjects"]
        query = select(a).order_by(a.c.created_at.desc(), a.c.id)
        if digest:
            algorithm, _, value = digest.partition(":") if ":" in digest else ("sha256", "", digest)
            matching = select(s.c.attestation_id).where(
                s.c.algorithm == algorithm, s.c.digest == value.lower()
            )
            query = query.where(a.c.id.in_(matching))
        if name:
            query = query.where(a.c.id.in_(select(s.c.attestation_id).where(s.c.name == name)))
        if predicate_type:
            query = query.where(a.c.predicate_type == predicate_type)
        if since:
            query = query.where(a.c.created_at >= since)
        if until:
            query = query.where(a.c.created_at <= until)
        if limit:
            query = query.limit(limit)
        with self.engine.connect() as db:
            rows = db.execute(query).mappings().all()
            return [self._row(db, row) for row in rows]

    def get(self, id_or_prefix: str) -> StoredAttestation:
        from sqlalchemy import select

        a = self._tables["attestations"]
        if len(id_or_prefix) < 8:
            raise UsageError("give at least 8 characters of an attestation id")
        with self.engine.connect() as db:
            rows = (
                db.execute(select(a).where(a.c.id.startswith(id_or_prefix.lower())).limit(2)).mappings().all()
            )
            if len(rows) != 1:
                raise UsageError(
                    f"{'no' if not rows else 'more than one'} attestation matches {id_or_prefix!r}"
                )
            return self._row(db, rows[0])

    def bundle_bytes(self, attestation_id: str) -> bytes:
        from sqlalchemy import select

        b = self._tables["blobs"]
        with self.engine.connect() as db:
            content = db.execute(select(b.c.content).where(b.c.digest == attestation_id)).scalar_one()
        data = bytes(content)
        if hashlib.sha256(data).hexdigest() != attestation_id:
            raise BundleFormatError(
                f"stored blob {attestation_id[:16]} does not match its digest: the store was altered"
            )
        return data

    def export(self, records: Iterable[StoredAttestation]) -> bytes:
        """JSON Lines, one bundle per line, in the order given."""
        return b"".join(self.bundle_bytes(r.id).strip() + b"\n" for r in records)

    def _row(self, db: Any, row: Any) -> StoredAttestation:
        from sqlalchemy import select

        s = self._tables["subjects"]
        digests = db.execute(
            select(s.c.algorithm, s.c.digest).where(s.c.attestation_id == row["id"]).order_by(s.c.algorithm)
        ).all()
        return StoredAttestation(
            id=row["id"],
            predicate_type=row["predicate_type"],
            subject_name=row["subject_name"],
            subject_digests=tuple(f"{alg}:{hex_}" for alg, hex_ in digests),
            key_id=row["key_id"],
            target=row["target"],
            created_at=row["created_at"],
        )


def _record(data: bytes, bundle: Bundle, statement: Statement, target: str) -> StoredAttestation:
    key_id = bundle.key_hint or next((s.keyid for s in bundle.envelope.signatures if s.keyid), "")
    return StoredAttestation(
        id=hashlib.sha256(data).hexdigest(),
        predicate_type=statement.predicate_type,
        subject_name=statement.subjects[0].name,
        subject_digests=tuple(str(d) for s in statement.subjects for d in s.digests),
        key_id=key_id,
        target=target,
        created_at=iso(now_utc()),
    )


def _tables(prefix: str) -> dict[str, Table]:
    from sqlalchemy import Column, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Table

    if not prefix.replace("_", "").isalnum():
        raise UsageError(f"invalid table prefix {prefix!r}")
    meta = MetaData()
    blobs = Table(
        f"{prefix}blobs",
        meta,
        Column("digest", String(64), primary_key=True),
        Column("size", Integer, nullable=False),
        Column("content", LargeBinary, nullable=False),
    )
    attestations = Table(
        f"{prefix}attestations",
        meta,
        Column("id", String(64), ForeignKey(blobs.c.digest), primary_key=True),
        Column("predicate_type", String(512), nullable=False, index=True),
        Column("subject_name", String(1024), nullable=False),
        Column("key_id", String(128), nullable=False),
        Column("target", String(4096), nullable=False),
        Column("created_at", String(20), nullable=False, index=True),
    )
    subjects = Table(
        f"{prefix}subjects",
        meta,
        Column("attestation_id", String(64), ForeignKey(attestations.c.id), nullable=False),
        Column("name", String(1024), nullable=False),
        Column("algorithm", String(32), nullable=False),
        Column("digest", String(128), nullable=False),
        Index(f"{prefix}subjects_digest", "algorithm", "digest"),
        Index(f"{prefix}subjects_name", "name"),
    )
    return {"blobs": blobs, "attestations": attestations, "subjects": subjects}
