"""The SQLite and PostgreSQL audit sinks: the gateway writes its hash chain there, `/admin/audit` reads it
back, and `bastion audit verify --database` catches every edited, removed, inserted or reordered row.

PostgreSQL runs at 127.0.0.1:5432 (trust auth, database ``test``); each test uses its own table and drops it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from bastion.cli.audit import audit
from bastion.cli.main import main
from bastion.errors import ConfigError
from bastion.gateway.app import build_app
from bastion.gateway.audit import GENESIS, chain_hash
from bastion.gateway.audit_sql import SqlAuditLog, database_url, verify_table
from bastion.gateway.config import parse_config
from bastion.gateway.runtime import Gateway
from tests.conftest import require_service
from tests.gateway_helpers import base_config, bearer, client, make_setup

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
ROW = [0.1, -0.2, 0.3, 0.0, 1.0, -1.0]


@pytest.fixture(params=["sqlite", "postgresql"])
def sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(database URL, table, the `audit:` configuration block) for a fresh table, dropped afterwards."""
    table = f"audit_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        db = tmp_path / "audit.db"
        yield f"sqlite:///{db}", table, {"sink": "sqlite", "path": str(db), "table": table}
        return
    require_service("PostgreSQL", 5432)
    yield PG_URL, table, {"sink": "postgresql", "url": PG_URL, "table": table}
    engine = sa.create_engine(database_url(PG_URL))
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
    engine.dispose()


def _fill(url: str, table: str, n: int = 6) -> None:
    log = SqlAuditLog(url, table)
    for i in range(n):
        log.append({"kind": "access", "requestId": f"r{i}", "status": 200, "caller": "alice"})
    log.close()


def _sql(url: str, table: str, *statements: str, **params: Any) -> list[Any]:
    """Run tampering statements; ``{t}`` is the (generated, quoted) table name, values are bound."""
    engine = sa.create_engine(database_url(url))
    with engine.begin() as conn:
        results = []
        for statement in statements:
            result = conn.execute(sa.text(statement.format(t=f'"{table}"')), params)
            results.append(result.all() if result.returns_rows else [])
    engine.dispose()
    return results


def _cli(url: str, table: str, *extra: str) -> Any:
    return CliRunner().invoke(audit, ["verify", "--database", url, "--table", table, *extra])


def test_an_untouched_table_verifies_and_restarts_continue_the_chain(sink: tuple[str, str, Any]) -> None:
    url, table, _ = sink
    _fill(url, table, 3)
    _fill(url, table, 2)  # a second process (or a restart) chains onto the last row
    report = verify_table(url, table)
    assert report.ok and report.records == 5
    log = SqlAuditLog(url, table)
    records = log.recent(10)
    log.close()
    assert [r["seq"] for r in records] == [0, 1, 2, 3, 4]
    assert records[0]["prev_hash"] == GENESIS and records[0]["hash"] == chain_hash(GENESIS, records[0])
    assert report.last_hash == records[-1]["hash"]
    result = _cli(url, table)
    assert result.exit_code == 0 and "chain intact, 5 records" in result.output


def test_two_writers_share_one_chain(sink: tuple[str, str, Any]) -> None:
    url, table, _ = sink
    a, b = SqlAuditLog(url, table), SqlAuditLog(url, table)
    for i in range(4):
        a.append({"kind": "access", "requestId": f"a{i}"})
        b.append({"kind": "access", "requestId": f"b{i}"})
    a.close()
    b.close()
    report = verify_table(url, table)
    assert report.ok and report.records == 8


@pytest.mark.parametrize("how", ["edited", "edited-column", "removed", "inserted", "reordered"])
def test_tampering_is_detected(sink: tuple[str, str, Any], how: str) -> None:
    url, table, _ = sink
    _fill(url, table)
    if how == "edited":
        _sql(
            url,
            table,
            "UPDATE {t} SET record = REPLACE(record, :a, :b) WHERE seq = 2",
            a='"status":200',
            b='"status":403',
        )
    elif how == "edited-column":
        _sql(url, table, "UPDATE {t} SET hash = (SELECT hash FROM {t} WHERE seq = 4) WHERE seq = 3")
    elif how == "removed":
        _sql(url, table, "DELETE FROM {t} WHERE seq = 2")
    elif how == "inserted":
        # shift the tail up by one and slip a forged record into the gap, chained onto its predecessor
        prev = _sql(url, table, "SELECT hash FROM {t} WHERE seq = 2")[0][0][0]
        forged = {"kind": "access", "requestId": "forged", "status": 200, "seq": 3, "prev_hash": prev}
        _sql(
            url,
            table,
            "UPDATE {t} SET seq = seq + 100 WHERE seq >= 3",
            "UPDATE {t} SET seq = seq - 99 WHERE seq >= 100",
            "INSERT INTO {t} (seq, prev_hash, hash, record) VALUES (3, :prev, :hash, :body)",
            prev=prev,
            hash=chain_hash(prev, forged),
            body=json.dumps(forged, sort_keys=True, separators=(",", ":")),
        )
    else:  # swap rows 2 and 3
        _sql(
            url,
            table,
            "UPDATE {t} SET seq = -1 WHERE seq = 2",
            "UPDATE {t} SET seq = 2 WHERE seq = 3",
            "UPDATE {t} SET seq = 3 WHERE seq = -1",
        )
    report = verify_table(url, table)
    assert not report.ok, how
    result = _cli(url, table, "--format", "json")
    assert result.exit_code == 1
    assert json.loads(result.output)["ok"] is False


def _exit(*argv: str) -> int | str | None:
    with pytest.raises(SystemExit) as stop:
        main(["audit", "verify", *argv])
    return stop.value.code


def test_verify_refuses_a_missing_table_with_exit_2(
    sink: tuple[str, str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    url, table, _ = sink
    assert _exit("--database", url, "--table", table) == 2
    assert "no audit table" in capsys.readouterr().err
    assert _exit("--database", url, "--table", "bad-name; DROP TABLE x") == 2
    assert _exit() == 2
    assert _exit("--database", "mysql://u@h/db") == 2


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture()
async def served(
    tmp_path: Path, sink: tuple[str, str, dict[str, Any]]
) -> AsyncIterator[tuple[Any, Any, str, str]]:
    url, table, block = sink
    setup = make_setup(tmp_path, audit=block)
    app = build_app(setup.config)
    yield setup, app, url, table
    await app.gw.close()


@pytest.mark.anyio
async def test_the_gateway_writes_every_request_to_the_database(served: tuple[Any, Any, str, str]) -> None:
    setup, app, url, table = served
    async with client(app) as c:
        ok = await c.post(
            "/v1/models/clf:predict", json={"instances": [ROW]}, headers=bearer(setup.keys["alice"])
        )
        refused = await c.post(
            "/v1/models/lin:predict", json={"instances": [ROW]}, headers=bearer(setup.keys["alice"])
        )
        anonymous = await c.get("/v1/models")
        recent = await c.get("/admin/audit?limit=50", headers=bearer(setup.keys["carol"]))
    assert (ok.status_code, refused.status_code, anonymous.status_code) == (200, 403, 401)
    assert not (setup.root / "audit.jsonl").exists()  # nothing went to the JSON Lines default
    records = recent.json()["records"]
    events = [r.get("event") for r in records if r["kind"] == "security"]
    assert events.count("model-loaded") == 2
    access = {r["requestId"]: r for r in records if r["kind"] == "access"}
    assert access[ok.headers["x-request-id"]]["decision"] == "allow"
    assert access[refused.headers["x-request-id"]]["status"] == 403
    assert access[anonymous.headers["x-request-id"]]["reason"] == "missing-credentials"
    assert setup.keys["alice"] not in json.dumps(records)
    report = verify_table(url, table)
    # the /admin/audit call itself is recorded after it answers: one more row than it returned
    assert report.ok and report.records == len(records) + 1
    assert _cli(url, table).exit_code == 0


def test_the_configuration_selects_and_checks_the_sink(tmp_path: Path) -> None:
    setup = make_setup(tmp_path)
    doc = base_config(tmp_path, setup.X)
    for bad in (
        {"sink": "postgresql"},
        {"sink": "postgresql", "url": "mysql://x@h/db"},
        {"sink": "sqlite", "path": "audit.jsonl"},
        {"sink": "file", "url": PG_URL},
        {"sink": "sqlite", "path": "a.db", "table": "x; DROP TABLE y"},
        {"sink": "sqlite", "path": "a.db", "fsync": True},
    ):
        with pytest.raises(ConfigError):
            parse_config({**doc, "audit": bad}, base=tmp_path)
    config = parse_config({**doc, "audit": {"sink": "sqlite", "path": "a.db"}}, base=tmp_path)
    assert config.audit.database_url() == f"sqlite:///{tmp_path / 'a.db'}"
    gw = Gateway(config)
    try:
        assert isinstance(gw.audit, SqlAuditLog)
    finally:
        gw.audit.close()
    assert verify_table(f"sqlite:///{tmp_path / 'a.db'}").records == 2  # model-loaded x2
