"""ONNX scanner: models built with onnx.helper, benign and hostile (nothing is ever run)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from bastion.core import Severity  # noqa: E402
from bastion.scanners.interface import FormatError, LimitExceeded, Location, ScanContext, TruncatedError  # noqa: E402
from bastion.scanners.onnx import looks_like_onnx, scan_onnx, unsafe_location_reason  # noqa: E402
from tests.conftest import mutations as _mutations  # noqa: E402

LOC = Location("model.onnx")


def _scan(model: object) -> ScanContext:
    data = memoryview(model.SerializeToString())  # type: ignore[attr-defined]
    ctx = ScanContext()
    scan_onnx(data, LOC, ctx, 0)
    return ctx


def _model(nodes: list[object], initializers: list[object] = (), **kw: object) -> object:  # type: ignore[assignment]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=list(initializers))
    return helper.make_model(graph, **kw)


def _external(name: str, location: str) -> object:
    t = helper.make_tensor(name, TensorProto.FLOAT, [2], [0.0, 0.0])
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    entry = t.external_data.add()
    entry.key, entry.value = "location", location
    return t


def _add() -> object:
    return helper.make_node("Add", ["x", "w"], ["y"])


def test_benign_model_has_no_findings() -> None:
    w = numpy_helper.from_array(__import__("numpy").ones(2, dtype="float32"), "w")
    model = _model([_add()], [w])
    ctx = _scan(model)
    assert ctx.findings == []
    assert [a.format for a in ctx.scanned] == ["onnx"]
    assert looks_like_onnx(memoryview(model.SerializeToString()))  # type: ignore[attr-defined]


def test_benign_external_data_written_by_onnx(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    w = numpy_helper.from_array(np.ones(4096, dtype="float32"), "w")
    model = _model([_add()], [w])
    path = tmp_path / "m.onnx"
    onnx.save_model(model, path, save_as_external_data=True, location="weights.bin", size_threshold=0)
    ctx = ScanContext()
    scan_onnx(memoryview(path.read_bytes()), LOC, ctx, 0)
    assert ctx.findings == []


def test_control_flow_and_local_function_are_benign() -> None:
    then_g = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])],
    )
    else_g = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2])],
    )
    cond = helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g)
    fn = helper.make_function(
        "my.local",
        "Twice",
        ["a"],
        ["b"],
        [helper.make_node("Add", ["a", "a"], ["b"])],
        [helper.make_opsetid("", 18)],
    )
    call = helper.make_node("Twice", ["x"], ["z"], domain="my.local")
    model = _model(
        [cond, call],
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("my.local", 1)],
        functions=[fn],
    )
    assert _scan(model).findings == []


@pytest.mark.parametrize(
    "location",
    [
        "../../../etc/passwd",
        "/etc/passwd",
        "C:\\Windows\\win.ini",
        "..\\..\\secret",
        "sub/../../x",
        "\\\\host\\share",
        "file:///etc/shadow",
        "~/.ssh/id_rsa",
        "w.bin:stream",
        "a/... /b",
        "",
    ],
)
def test_external_data_traversal_is_critical(location: str) -> None:
    ctx = _scan(_model([_add()], [_external("w", location)]))
    assert [f.rule_id for f in ctx.findings] == ["BAS-M201"]
    assert ctx.findings[0].severity is Severity.CRITICAL
    assert ctx.findings[0].offset is not None


@pytest.mark.parametrize("location", ["weights.bin", "data/w.bin", "model.onnx.data", "a..b.bin"])
def test_plain_relative_locations_are_fine(location: str) -> None:
    assert unsafe_location_reason(location) is None
    assert _scan(_model([_add()], [_external("w", location)])).findings == []


def test_traversal_hidden_in_subgraph_constant_and_sparse_initializer() -> None:
    const = helper.make_node("Constant", [], ["c"], value=_external("c", "/etc/hostname"))
    body = helper.make_graph(
        [const, helper.make_node("Identity", ["c"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2])],
        initializer=[_external("i", "../i.bin")],
    )
    else_g = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2])],
    )
    cond = helper.make_node("If", ["c0"], ["y"], then_branch=body, else_branch=else_g)
    model = _model([cond])
    sparse = helper.make_sparse_tensor(
        _external("sv", "/abs/values"), helper.make_tensor("si", TensorProto.INT64, [1], [0]), [2]
    )
    model.graph.sparse_initializer.append(sparse)  # type: ignore[attr-defined]
    messages = [f.message for f in _scan(model).findings if f.rule_id == "BAS-M201"]
    assert len(messages) == 3
    assert any("/etc/hostname" in m for m in messages) and any("/abs/values" in m for m in messages)


def test_traversal_inside_function_body() -> None:
    const = helper.make_node("Constant", [], ["b"], value=_external("c", "../../x"))
    fn = helper.make_function("my.local", "F", [], ["b"], [const], [helper.make_opsetid("", 18)])
    model = _model([_add()], functions=[fn])
    assert [f.rule_id for f in _scan(model).findings] == ["BAS-M201"]


def test_custom_and_contrib_domains() -> None:
    nodes = [
        helper.make_node("EvilOp", ["x"], ["a"], domain="evil.ops"),
        helper.make_node("EvilOp", ["a"], ["b"], domain="evil.ops"),
        helper.make_node("FusedGemm", ["b"], ["c"], domain="com.microsoft"),
        helper.make_node("Tree", ["c"], ["y"], domain="ai.onnx.ml"),
    ]
    ctx = _scan(_model(nodes))
    by_rule = {f.rule_id: f for f in ctx.findings}
    assert set(by_rule) == {"BAS-M202", "BAS-M203"}
    assert by_rule["BAS-M202"].count == 2 and by_rule["BAS-M202"].callable == "evil.ops::EvilOp"
    assert by_rule["BAS-M202"].severity is Severity.MEDIUM
    assert by_rule["BAS-M203"].severity is Severity.LOW


def test_duplicate_location_is_a_parser_differential() -> None:
    t = _external("w", "weights.bin")
    entry = t.external_data.add()  # type: ignore[attr-defined]
    entry.key, entry.value = "location", "../../etc/passwd"
    rules = sorted(f.rule_id for f in _scan(_model([_add()], [t])).findings)
    assert rules == ["BAS-M201", "BAS-M204"]


def _ld(number: int, payload: bytes) -> bytes:
    assert len(payload) < 2**21
    n, size = len(payload), b""
    while True:
        size += bytes([(n & 0x7F) | (0x80 if n >> 7 else 0)])
        n >>= 7
        if not n:
            return bytes([number << 3 | 2]) + size + payload


def test_deeply_nested_subgraphs_hit_the_depth_limit() -> None:
    # Built by hand: onnx's own protobuf runtime refuses to build messages this deep.
    graph = _ld(1, _ld(4, b"Identity"))
    for _ in range(200):
        attribute = _ld(1, b"then_branch") + _ld(6, graph)
        graph = _ld(1, _ld(4, b"If") + _ld(5, attribute))
    data = b"\x08\x09" + _ld(7, graph)
    assert looks_like_onnx(memoryview(data))
    with pytest.raises(LimitExceeded):
        scan_onnx(memoryview(data), LOC, ScanContext(), 0)


def test_truncated_model_keeps_findings_and_raises() -> None:
    fn = helper.make_function(
        "my.local", "F", ["a"], ["b"], [helper.make_node("Neg", ["a"], ["b"])], [helper.make_opsetid("", 18)]
    )
    model = _model([_add()], [_external("w", "/etc/passwd")], functions=[fn])
    data = model.SerializeToString()  # type: ignore[attr-defined]
    # functions (field 25) are written after the graph (field 7): cut inside them.
    ctx = ScanContext()
    with pytest.raises(TruncatedError) as err:
        scan_onnx(memoryview(data[:-3]), LOC, ctx, 0)
    assert err.value.offset is not None
    assert [f.rule_id for f in ctx.findings] == ["BAS-M201"]


def test_model_without_graph_is_malformed() -> None:
    with pytest.raises(FormatError):
        scan_onnx(memoryview(b"\x08\x07"), LOC, ScanContext(), 0)


@pytest.mark.parametrize(
    "data", [b"", b"\x08\x07", b"PK\x03\x04", b"\x80\x04\x95", b"\x0a\x02\x3a\x00", b"\x8f" * 20]
)
def test_looks_like_onnx_rejects_other_content(data: bytes) -> None:
    assert not looks_like_onnx(memoryview(data))


def test_random_corruption_only_raises_format_errors() -> None:
    seed = _model([_add()], [_external("w", "../x")]).SerializeToString()  # type: ignore[attr-defined]
    for blob in _mutations(seed):
        looks_like_onnx(memoryview(blob))
        with contextlib.suppress(FormatError):
            scan_onnx(memoryview(blob), LOC, ScanContext(), 0)
