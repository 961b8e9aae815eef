"""skops scanner: schema.json from real skops dumps (when installed) and hand-built hostile schemas."""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from typing import Any

import pytest

from bastion.core import Severity
from bastion.scanners.interface import FormatError, LimitExceeded, Location, ScanContext
from bastion.scanners.skops import scan_skops_schema

LOC = Location("model.skops", "schema.json")


def node(loader: str, module: str, cls: str, content: Any = None, **extra: Any) -> dict[str, Any]:
    n: dict[str, Any] = {"__class__": cls, "__module__": module, "__loader__": loader, **extra}
    if content is not None:
        n["content"] = content
    return n


def schema(*children: dict[str, Any]) -> dict[str, Any]:
    """A Pipeline-like root whose attrs dict holds ``children``."""
    attrs = node(
        "DictNode",
        "builtins",
        "dict",
        {f"k{i}": c for i, c in enumerate(children)},
        key_types=node("ListNode", "builtins", "list", []),
    )
    root = node("ObjectNode", "sklearn.pipeline", "Pipeline", attrs, __id__=1)
    root.update(protocol=2, _skops_version="0.10")
    return root


def scan(doc: Any) -> ScanContext:
    ctx = ScanContext()
    scan_skops_schema(memoryview(json.dumps(doc).encode()), LOC, ctx, 0)
    return ctx


def rules(ctx: ScanContext) -> list[str]:
    return sorted(f.rule_id for f in ctx.findings)


def test_real_skops_dump_is_clean() -> None:
    sio = pytest.importorskip("skops.io")
    np = pytest.importorskip("numpy")
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    rng = np.random.default_rng(0)
    x = rng.random((40, 3))
    y = (x[:, 0] > 0.5).astype(int)
    for est in (
        make_pipeline(FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression()),
        RandomForestClassifier(n_estimators=3, random_state=0),
        HistGradientBoostingClassifier(max_iter=3),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            blob = sio.dumps(est.fit(x, y))
        raw = zipfile.ZipFile(io.BytesIO(blob)).read("schema.json")
        ctx = ScanContext()
        scan_skops_schema(memoryview(raw), LOC, ctx, 0)
        assert ctx.findings == [], (type(est).__name__, ctx.findings)
        assert [a.format for a in ctx.scanned] == ["skops-schema"]


def test_benign_hand_built_schema() -> None:
    doc = schema(
        node("FunctionNode", "numpy", "log1p"),
        node("NdArrayNode", "numpy", "ndarray", {"method": "numpy", "type": "numpy", "file": "a.npy"}),
        node("TypeNode", "builtins", "str"),
        node("JsonNode", "builtins", "int", "3", is_json=True),
        node("OperatorFuncNode", "operator", "add", attrs=node("TupleNode", "builtins", "tuple", [])),
        node(
            "TreeNode",
            "sklearn.tree._tree",
            "Tree",
            {},
            __reduce__={"args": node("TupleNode", "builtins", "tuple", [])},
        ),
        node("SparseMatrixNode", "scipy.sparse._csr", "csr_matrix", {"type": "scipy", "file": "b.npz"}),
    )
    assert scan(doc).findings == []


@pytest.mark.parametrize(
    ("loader", "module", "cls"),
    [
        ("FunctionNode", "builtins", "eval"),
        ("FunctionNode", "builtins", "exec"),
        ("FunctionNode", "os", "system"),
        ("FunctionNode", "posix", "system"),
        ("FunctionNode", "subprocess", "Popen"),
        ("ReduceNode", "builtins", "getattr"),
        ("ConstructorFromReduceNode", "subprocess", "Popen"),
        ("OperatorFuncNode", "operator", "attrgetter"),
        ("OperatorFuncNode", "builtins", "eval"),
        ("FunctionNode", "numpy", "load"),
        ("ObjectNode", "os", "_wrap_close"),
        ("TypeNode", "builtins", "type"),
    ],
)
def test_dangerous_callables_are_critical(loader: str, module: str, cls: str) -> None:
    ctx = scan(schema(node(loader, module, cls)))
    assert rules(ctx) == ["BAS-M250"]
    assert ctx.findings[0].severity is Severity.CRITICAL
    assert ctx.findings[0].callable == f"{module}.{cls}"
    assert "/content/content/k0" in ctx.findings[0].message


def test_untrusted_callable_and_type() -> None:
    ctx = scan(
        schema(node("FunctionNode", "my_pkg.feats", "transform"), node("ObjectNode", "my_pkg.models", "Net"))
    )
    assert [(f.rule_id, f.severity) for f in sorted(ctx.findings, key=lambda f: f.rule_id)] == [
        ("BAS-M251", Severity.HIGH),
        ("BAS-M252", Severity.MEDIUM),
    ]


def test_method_node() -> None:
    owner = node("ObjectNode", "sklearn.preprocessing._data", "StandardScaler")
    good = node(
        "MethodNode", "sklearn.preprocessing._data", "StandardScaler", {"func": "transform", "obj": owner}
    )
    assert scan(schema(good)).findings == []
    evil = node(
        "MethodNode", "sklearn.preprocessing._data", "StandardScaler", {"func": "__reduce_ex__", "obj": owner}
    )
    assert rules(scan(schema(evil))) == ["BAS-M250"]


def test_unknown_loader_and_malformed_node() -> None:
    assert rules(scan(schema(node("PickleNode", "sklearn.base", "X")))) == ["BAS-M253"]
    assert rules(scan(schema({"__loader__": "ObjectNode", "__module__": 3}))) == ["BAS-M253"]


def test_repeated_nodes_are_reported_once() -> None:
    ctx = scan(schema(*[node("FunctionNode", "os", "system") for _ in range(100)]))
    assert rules(ctx) == ["BAS-M250"]


def test_hidden_deep_in_the_tree() -> None:
    inner: dict[str, Any] = node("FunctionNode", "builtins", "eval")
    for _ in range(200):
        inner = node("ListNode", "builtins", "list", [inner])
    assert rules(scan(schema(inner))) == ["BAS-M250"]


@pytest.mark.parametrize(
    "blob",
    [b"", b"{", b"[]", b'{"a": 1}', b"\xff", b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"],
)
def test_malformed_schemas(blob: bytes) -> None:
    with pytest.raises(FormatError):
        scan_skops_schema(memoryview(blob), LOC, ScanContext(), 0)


def test_limit() -> None:
    from bastion.scanners.interface import Limits

    with pytest.raises(LimitExceeded):
        scan_skops_schema(memoryview(b"{}" * 100), LOC, ScanContext(limits=Limits(max_header_bytes=10)), 0)
