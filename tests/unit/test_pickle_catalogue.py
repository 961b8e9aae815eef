"""The allowlist catalogue is versioned data: well-formed built-ins, organisation extensions, errors."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest

from bastion.core import Severity
from bastion.errors import ConfigError
from bastion.scanners.interface import Location, ScanContext
from bastion.scanners.pickle import load_catalogue, scan_pickle
from bastion.scanners.pickle.values import Use


def test_builtin_files_are_versioned_per_framework() -> None:
    folder = resources.files("bastion.scanners").joinpath("catalogue")
    frameworks = set()
    for item in folder.iterdir():
        if item.name.endswith(".json"):
            doc = json.loads(item.read_text(encoding="utf-8"))
            assert doc["schema_version"] == 1
            frameworks.add(doc["framework"])
    assert {"python-stdlib", "numpy", "torch", "sklearn", "joblib", "scipy", "denylist"} <= frameworks


def test_higher_order_entries_declare_called_arguments() -> None:
    cat = load_catalogue()
    assert dict(cat.entry("torch._tensor", "_rebuild_from_type_v2").args)[0] is Use.CALL  # type: ignore[union-attr]
    assert dict(cat.entry("copyreg", "_reconstructor").args)[1] is Use.CALL  # type: ignore[union-attr]
    assert dict(cat.entry("collections", "defaultdict").args)[0] is Use.CALL  # type: ignore[union-attr]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        assert dict(cat.entry(module, "_reconstruct").args)[0] is Use.NEW  # type: ignore[union-attr]


def test_pandas_names_of_both_major_versions_are_catalogued() -> None:
    """pandas 3 pickles public aliases, pandas 2 the defining modules (observed with 2.2.3)."""
    cat = load_catalogue()
    for module, name in (("pandas", "DataFrame"), ("pandas.core.frame", "DataFrame"),
                         ("pandas", "Series"), ("pandas.core.series", "Series"),
                         ("pandas.arrays", "ArrowStringArray"),
                         ("pandas.core.arrays.string_arrow", "ArrowStringArray")):  # fmt: skip
        entry = cat.entry(module, name)
        assert entry is not None and entry.use >= Use.NEW, (module, name)
    assert dict(cat.entry("pandas.core.indexes.base", "_new_Index").args)[0] is Use.NEW  # type: ignore[union-attr]


def test_allowlist_and_denylist_do_not_overlap() -> None:
    cat = load_catalogue()
    overlap = [f"{m}.{n}" for (m, n) in cat.allow if cat.denied(m, n)]
    assert not overlap


def test_denylist_matches_dotted_prefixes_and_dunders_exactly() -> None:
    cat = load_catalogue()
    assert cat.denied("os", "system")
    assert cat.denied("torch", "hub.load")
    assert cat.denied("torch._utils", "_rebuild_tensor_v2.__globals__")
    assert not cat.denied("ossaudiodev", "open")  # whole segments only
    assert not cat.denied("torch._utils", "_rebuild_tensor_v2")


def test_denylist_exemptions_cover_the_named_names_only(tmp_path: Path) -> None:
    cat = load_catalogue()
    assert not cat.denied("pathlib", "PosixPath")
    assert cat.denied("pathlib", "PosixPath.write_text")  # a walk through the class
    assert cat.denied("pathlib", "os.system")  # through the module's own imports
    assert cat.denied("pathlib", "PosixPath.__reduce__")
    assert cat.denied("pathlib", "_make_child_relpath")
    # an exemption never lifts a denylist entry that names the exempt name itself
    extra = tmp_path / "deny.json"
    extra.write_text(
        json.dumps({"schema_version": 1, "kind": "denylist", "entries": [{"qualname": "pathlib.PosixPath"}]}),
        encoding="utf-8",
    )
    assert load_catalogue([extra]).denied("pathlib", "PosixPath")


def test_organisation_file_extends_the_allowlist(tmp_path: Path) -> None:
    extra = tmp_path / "acme.json"
    extra.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "framework": "acme",
                "version": "1",
                "entries": [{"module": "acme.models", "name": "build", "use": "call"}],
            }
        ),
        encoding="utf-8",
    )
    data = b"cacme.models\nbuild\n(tR."
    ctx = ScanContext()
    scan_pickle(memoryview(data), Location("m.pkl"), ctx, 0)
    assert [f.severity for f in ctx.findings] == [Severity.HIGH]
    ctx = ScanContext(allowlists=(str(extra),))
    scan_pickle(memoryview(data), Location("m.pkl"), ctx, 0)
    assert not ctx.findings
    assert load_catalogue([extra]).entry("acme.models", "build") is not None


@pytest.mark.parametrize(
    "doc",
    [
        "not json",
        "[]",
        '{"schema_version": 2, "framework": "x", "version": "1", "entries": []}',
        '{"schema_version": 1, "framework": "x", "version": "1", "entries": {}}',
        '{"schema_version": 1, "framework": "x", "version": "1",'
        ' "entries": [{"module": "a b", "name": "c"}]}',
        '{"schema_version": 1, "framework": "x", "version": "1",'
        ' "entries": [{"module": "a", "name": "c", "use": "x"}]}',
        '{"schema_version": 1, "framework": "x", "version": "1",'
        ' "entries": [{"module": "a", "name": "c", "args": {"zero": "call"}}]}',
        '{"schema_version": 1, "kind": "denylist", "entries": [{"qualname": ""}]}',
        '{"schema_version": 1, "kind": "denylist", "entries": [{"qualname": "a", "except": "b"}]}',
        '{"schema_version": 1, "kind": "denylist", "entries": [{"qualname": "a", "except": ["b.c"]}]}',
        '{"schema_version": 1, "entries": []}',
    ],
)
def test_malformed_catalogue_raises_config_error(tmp_path: Path, doc: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(doc, encoding="utf-8")
    with pytest.raises(ConfigError):
        load_catalogue([path])


def test_missing_catalogue_file_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_catalogue([tmp_path / "nope.json"])
