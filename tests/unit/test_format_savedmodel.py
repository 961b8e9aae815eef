"""TensorFlow SavedModel scanner: saved_model.pb bytes built by hand (no TensorFlow needed)."""

from __future__ import annotations

import contextlib

import pytest

from bastion.core import Severity
from bastion.scanners.interface import FormatError, Location, ScanContext, TruncatedError
from bastion.scanners.onnx import looks_like_onnx
from bastion.scanners.savedmodel import looks_like_savedmodel, scan_savedmodel
from tests.conftest import mutations as _mutations

LOC = Location("saved_model.pb")


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def ld(number: int, payload: bytes | str) -> bytes:
    raw = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(raw)) + raw


def vi(number: int, value: int) -> bytes:
    return varint(number << 3) + varint(value)


def node(name: str, op: str, **str_attrs: str) -> bytes:
    attrs = b"".join(ld(5, ld(1, k) + ld(2, ld(2, v))) for k, v in str_attrs.items())
    return ld(1, name) + ld(2, op) + ld(3, "input:0") + attrs


def function(name: str, *nodes: bytes) -> bytes:
    return ld(1, ld(1, name)) + b"".join(ld(3, n) for n in nodes)


def saved_model(nodes: list[bytes], functions: list[bytes] = ()) -> bytes:  # type: ignore[assignment]
    library = ld(2, b"".join(ld(1, f) for f in functions)) if functions else b""
    graph_def = b"".join(ld(1, n) for n in nodes) + library + ld(4, vi(1, 1087))
    meta_graph = ld(1, ld(4, "serve")) + ld(2, graph_def) + ld(3, ld(1, "save/Const:0"))
    return vi(1, 1) + ld(2, meta_graph)


SAVER = [
    node("save/Const", "Const"),
    node("save/SaveV2", "SaveV2"),
    node("save/RestoreV2", "RestoreV2"),
    node("save/MergeV2Checkpoints", "MergeV2Checkpoints"),
    node("save/ShardedFilename", "ShardedFilename"),
    node("save/StringJoin", "StringJoin"),
    node("Restore", "Restore"),
    node("Save", "Save"),
    node("dense/MatMul", "MatMul"),
    node("print", "PrintV2", output_stream="stderr"),
]


def scan(data: bytes) -> ScanContext:
    ctx = ScanContext()
    scan_savedmodel(memoryview(data), LOC, ctx, 0)
    return ctx


def test_benign_graph_with_saver_ops_has_no_findings() -> None:
    data = saved_model(
        SAVER, [function("__inference_call_42", node("MatMul", "MatMul"), node("r", "RestoreV2"))]
    )
    assert looks_like_savedmodel(memoryview(data))
    assert not looks_like_onnx(memoryview(data))
    ctx = scan(data)
    assert ctx.findings == []
    assert [a.format for a in ctx.scanned] == ["tf-savedmodel"]


@pytest.mark.parametrize(
    ("op", "rule_id", "severity"),
    [
        ("PyFunc", "BAS-M210", Severity.CRITICAL),
        ("PyFuncStateless", "BAS-M210", Severity.CRITICAL),
        ("EagerPyFunc", "BAS-M210", Severity.CRITICAL),
        ("WriteFile", "BAS-M211", Severity.HIGH),
        ("ReadFile", "BAS-M212", Severity.HIGH),
        ("MatchingFiles", "BAS-M212", Severity.HIGH),
        ("ImmutableConst", "BAS-M213", Severity.MEDIUM),
        ("DebugIdentityV2", "BAS-M214", Severity.HIGH),
    ],
)
def test_dangerous_ops_in_graph(op: str, rule_id: str, severity: Severity) -> None:
    ctx = scan(saved_model([*SAVER, node("evil", op)]))
    assert [(f.rule_id, f.severity, f.callable) for f in ctx.findings] == [(rule_id, severity, op)]
    assert "evil" in ctx.findings[0].message and ctx.findings[0].offset is not None


def test_dangerous_op_hidden_in_library_function_is_found() -> None:
    fn = function(
        "__inference_serve_7", node("MatMul", "MatMul"), node("cb", "EagerPyFunc"), node("cb2", "EagerPyFunc")
    )
    ctx = scan(saved_model(SAVER, [fn]))
    assert [f.rule_id for f in ctx.findings] == ["BAS-M210"]
    assert ctx.findings[0].count == 2 and "__inference_serve_7" in ctx.findings[0].message


def test_print_into_a_file_is_reported_but_print_to_stderr_is_not() -> None:
    ctx = scan(saved_model([node("p", "PrintV2", output_stream="file:///tmp/exfil.txt")]))
    assert [f.rule_id for f in ctx.findings] == ["BAS-M211"]


def test_every_meta_graph_is_scanned() -> None:
    first = saved_model(SAVER)
    second = ld(2, ld(2, ld(1, node("w", "WriteFile"))))
    assert [f.rule_id for f in scan(first + second).findings] == ["BAS-M211"]


def test_truncated_file_keeps_earlier_findings() -> None:
    data = saved_model([node("evil", "PyFunc")]) + ld(2, ld(2, ld(1, node("x", "MatMul"))))
    ctx = ScanContext()
    with pytest.raises(TruncatedError):
        scan_savedmodel(memoryview(data[:-4]), LOC, ctx, 0)
    assert [f.rule_id for f in ctx.findings] == ["BAS-M210"]


def test_giant_length_and_garbage_are_rejected_cleanly() -> None:
    with pytest.raises(TruncatedError):
        scan(vi(1, 1) + b"\x12" + varint(2**60))
    with pytest.raises(FormatError):
        scan(vi(1, 1) + b"\x13\x00")  # group wire type
    with pytest.raises(FormatError):
        scan(vi(1, 1))  # no meta graph


def test_deeply_nested_garbage_does_not_recurse() -> None:
    # The walker only descends the fixed schema depth; nesting elsewhere is never followed.
    inner = b""
    for _ in range(2000):
        inner = ld(1, inner)
    ctx = scan(saved_model([ld(5, inner)]))
    assert ctx.findings == []


@pytest.mark.parametrize(
    "data", [b"", b"\x08\x01", b"\x08\x01\x3a\x00\x12\x00", b"\x12\x02\x08\x01", b"GGUF\x03"]
)
def test_sniff_rejects_non_savedmodels(data: bytes) -> None:
    assert not looks_like_savedmodel(memoryview(data))


def test_random_corruption_only_raises_format_errors() -> None:
    seed = saved_model(
        SAVER, [function("f", node("cb", "EagerPyFunc"), node("p", "PrintV2", output_stream="x"))]
    )
    for blob in _mutations(seed):
        looks_like_savedmodel(memoryview(blob))
        with contextlib.suppress(FormatError):
            scan(blob)
