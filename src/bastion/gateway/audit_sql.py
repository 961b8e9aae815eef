"""The audit trail in a SQL table (SQLite or PostgreSQL through SQLAlchemy), with the same hash chain as the
JSON Lines file, and its verifier.

One row per record::

    seq BIGINT PRIMARY KEY | prev_hash CHAR(64) | hash CHAR(64) | record TEXT (canonical JSON, without "hash")

``hash = sha256(prev_hash || canonical(record))`` exactly as in ``bastion.gateway.audit``; the JSON keeps its
own ``seq`` and ``prev_hash`` so the columns cannot be edited apart from the content. Each append reads the
last row and inserts the next one in one transaction; two writers (replicas) that race for the same ``seq``
collide on the primary key and the loser retries on the new tail, so the chain never forks.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from bastion.core.chain import GENESIS, canonical, chain_hash
from bastion.errors import ConfigError, InputError
from bastion.gateway.audit import ChainProblem, ChainReport

if TYPE_CHECKING:
    from sqlalchemy import Engine, Table

TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
DEFAULT_TABLE = "bastion_audit"
_RETRIES = 20


def database_url(url: str) -> str:
    """Normalise ``postgresql://`` to the pg8000 driver (pure Python, BSD); other URLs pass unchanged."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"not a database URL: {url!r}") from None
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+pg8000")
    if parsed.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ConfigError(f"audit database must be SQLite or PostgreSQL, not {parsed.get_backend_name()!r}")
    return parsed.render_as_string(hide_password=False)


def redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _table(name: str) -> Table:
    from sqlalchemy import BigInteger, Column, MetaData, String, Table, Text

    if not TABLE_NAME.match(name):
        raise ConfigError(f"bad audit table name {name!r}: letters, digits and _ only")
    return Table(
        name,
        MetaData(),
        Column("seq", BigInteger, primary_key=True, autoincrement=False),
        Column("prev_hash", String(64), nullable=False),
        Column("hash", String(64), nullable=False),
        Column("record", Text, nullable=False),
    )


def _engine(url: str) -> Engine:
    from sqlalchemy import create_engine

    return create_engine(database_url(url), pool_pre_ping=True)


class SqlAuditLog:
    """Append-only, hash-chained audit table. Thread-safe; every record is committed before it returns."""

    def __init__(self, url: str, table: str = DEFAULT_TABLE) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        self.url = redacted(url)
        self._table = _table(table)
        self._engine = _engine(url)
        self._lock = threading.Lock()
        try:
            self._table.metadata.create_all(self._engine, checkfirst=True)
        except SQLAlchemyError as exc:
            self._engine.dispose()
            raise ConfigError(f"audit database {self.url}: {type(exc).__name__}: {exc.args[0]}") from None

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        from sqlalchemy import select
        from sqlalchemy.exc import IntegrityError

        t = self._table
        with self._lock:
            for _ in range(_RETRIES):
                try:
                    with self._engine.begin() as conn:
                        last = conn.execute(
                            select(t.c.seq, t.c.hash).order_by(t.c.seq.desc()).limit(1)
                        ).first()
                        prev, seq = (GENESIS, 0) if last is None else (str(last.hash), int(last.seq) + 1)
                        entry = {**record, "seq": seq, "prev_hash": prev}
                        entry["hash"] = chain_hash(prev, entry)
                        body = canonical({k: v for k, v in entry.items() if k != "hash"}).decode()
                        conn.execute(
                            t.insert().values(seq=seq, prev_hash=prev, hash=entry["hash"], record=body)
                        )
                    return entry
                except IntegrityError:
                    continue  # another writer took this seq: chain onto its record instead
            raise InputError(f"audit database {self.url}: could not append after {_RETRIES} conflicts")

    def recent(self, limit: int) -> list[dict[str, Any]]:
        from sqlalchemy import select

        t = self._table
        with self._engine.connect() as conn:
            rows = conn.execute(select(t.c.hash, t.c.record).order_by(t.c.seq.desc()).limit(limit)).all()
        return [{**json.loads(row.record), "hash": row.hash} for row in reversed(rows)]

    def close(self) -> None:
        """Release the connections; closing twice is harmless."""
        self._engine.dispose()


def _rows(url: str, table: str) -> Iterator[Any]:
    from sqlalchemy import inspect, select
    from sqlalchemy.exc import SQLAlchemyError

    t = _table(table)
    engine = _engine(url)
    try:
        if not inspect(engine).has_table(table):
            raise InputError(f"{redacted(url)}: no audit table {table!r}")
        with engine.connect() as conn:
            yield from conn.execute(select(t).order_by(t.c.seq))
    except SQLAlchemyError as exc:
        raise InputError(f"{redacted(url)}: cannot read: {type(exc).__name__}: {exc.args[0]}") from None
    finally:
        engine.dispose()


def verify_table(url: str, table: str = DEFAULT_TABLE, *, max_problems: int = 20) -> ChainReport:
    """Recompute every link in ``seq`` order. A problem's ``line`` is the row's position (1-based)."""
    prev, expected_seq, count = GENESIS, 0, 0
    problems: list[ChainProblem] = []
    for number, row in enumerate(_rows(url, table), start=1):
        if len(problems) >= max_problems:
            break
        try:
            record = json.loads(row.record)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            problems.append(ChainProblem(number, f"seq {row.seq}: record is not a JSON object"))
            prev, expected_seq = str(row.hash), int(row.seq) + 1
            continue
        count += 1
        if row.seq != expected_seq or record.get("seq") != row.seq:
            problems.append(
                ChainProblem(
                    number,
                    f"sequence {row.seq} (record says {record.get('seq')!r}) where {expected_seq} was "
                    "expected (a record was removed, inserted or reordered)",
                )
            )
        if row.prev_hash != prev or record.get("prev_hash") != row.prev_hash:
            problems.append(ChainProblem(number, "prev_hash does not match the previous record's hash"))
        if chain_hash(str(record.get("prev_hash")), record) != row.hash:
            problems.append(ChainProblem(number, "hash does not match the record's content (edited)"))
        prev, expected_seq = str(row.hash), int(row.seq) + 1
    return ChainReport(f"{redacted(url)}#{table}", count, tuple(problems), prev)
