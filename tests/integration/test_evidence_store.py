"""The evidence store against real SQLite and the real PostgreSQL server (never skipped when it answers)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bastion.evidence.attest import HashOptions, PredicateKind, attest
from bastion.evidence.bundle import parse_bundles
from bastion.evidence.errors import BundleFormatError
from bastion.evidence.keys import Keyring
from bastion.evidence.store import EvidenceStore
from bastion.evidence.targets import parse_target
from tests.conftest import require_service
from tests.unit.evidence_helpers import make_key, make_model

PG_URL = os.environ.get("BASTION_TEST_DATABASE_URL", "postgresql+pg8000://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EvidenceStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'evidence.db'}"
    else:
        if "BASTION_TEST_DATABASE_URL" not in os.environ:
            require_service("PostgreSQL", 5432)
        url = PG_URL
    evidence = EvidenceStore(url, prefix=f"t{uuid.uuid4().hex[:12]}_")
    try:
        yield evidence
    finally:
        evidence.drop()
        evidence.close()


def test_store_indexes_queries_exports_and_imports(store: EvidenceStore, tmp_path: Path) -> None:
    _, signer = make_key(Keyring(tmp_path / "home"))
    model = make_model(tmp_path / "model")
    target = parse_target(f"dir:{model}")
    made = attest(target, signer, (PredicateKind.MANIFEST, PredicateKind.BOM), HashOptions())
    records = [store.add(a.bundle.to_json(), target=target.uri) for a in made]
    assert store.add(made[0].bundle.to_json()).id == records[0].id  # idempotent
    digest = str(made[0].statement.subjects[0].digests[0])
    assert {r.id for r in store.query(digest=digest)} == {
        r.id for r in records
    }  # same subject, two predicates
    assert store.query(digest="sha256:" + "0" * 64) == []
    assert len(store.query(name="model")) == 2
    bom_only = store.query(predicate_type="https://cyclonedx.org/bom/v1.6")
    assert [r.id for r in bom_only] == [records[1].id]
    assert store.query(since="2999-01-01T00:00:00Z") == []
    assert store.get(records[0].id[:12]) == records[0]
    assert store.bundle_bytes(records[0].id) == made[0].bundle.to_json()

    exported = store.export(store.query())
    assert len(parse_bundles(exported, source="export")) == 2
    (tmp_path / "export.jsonl").write_bytes(exported)
    other = EvidenceStore(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        imported = other.import_file(tmp_path / "export.jsonl")
        assert {r.id for r in imported} == {r.id for r in records}
    finally:
        other.close()


def test_store_refuses_garbage(store: EvidenceStore) -> None:
    with pytest.raises(BundleFormatError):
        store.add(b'{"mediaType": "nope"}')
    assert store.query() == []
