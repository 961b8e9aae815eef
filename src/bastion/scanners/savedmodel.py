"""TensorFlow SavedModel (``saved_model.pb``) scanner, reading the protobuf without TensorFlow.

SavedModel → meta_graphs (2) → MetaGraphDef.graph_def (2) → GraphDef.node (1) and
GraphDef.library (2) → FunctionDefLibrary.function (1) → FunctionDef.node_def (3). Every NodeDef's
``op`` is judged: ops that call back into Python, or read, write and enumerate files on the
serving host, are reported. The checkpoint ops every SavedModel's saver uses (Save, SaveV2,
Restore, RestoreV2, MergeV2Checkpoints, ShardedFilename...) are expected and not reported.
"""

from __future__ import annotations

from dataclasses import dataclass

from bastion.core import Severity
from bastion.scanners.interface import FormatError, Location, Rule, ScanContext, rule
from bastion.scanners.protobuf import LEN, VARINT, Field, iter_fields

_ATLAS = ("AML.T0011.000", "AML.T0010", "AML.M0011", "AML.M0014")

TF_PYTHON_OP = rule(
    "BAS-M210",
    "tf-python-callback-op",
    Severity.CRITICAL,
    "TensorFlow graph calls back into Python (PyFunc / EagerPyFunc)",
    "Do not serve this model. PyFunc-family ops run arbitrary Python registered in the loading process; "
    "a graph that contains them was built with tf.py_function / tf.numpy_function and cannot be trusted "
    "or served portably. Re-export the model without Python callbacks.",
    atlas=_ATLAS,
    cwe=("CWE-94",),
)
TF_FILE_WRITE_OP = rule(
    "BAS-M211",
    "tf-file-write-op",
    Severity.HIGH,
    "TensorFlow graph writes or deletes files on the host",
    "A serving graph has no reason to write files. Inspect the op (saved_model_cli show --all) and "
    "re-export the model without it; serve it with a read-only filesystem meanwhile.",
    atlas=_ATLAS,
    cwe=("CWE-73",),
)
TF_FILE_READ_OP = rule(
    "BAS-M212",
    "tf-file-read-op",
    Severity.HIGH,
    "TensorFlow graph reads or lists files on the host",
    "The graph can read or enumerate arbitrary host files at inference time (data exfiltration through "
    "model outputs). Check which paths the op receives and re-export the model without it; serve it "
    "sandboxed with only its own assets readable.",
    atlas=_ATLAS,
    cwe=("CWE-73", "CWE-200"),
)
TF_MEMORY_MAPPED_OP = rule(
    "BAS-M213",
    "tf-memory-mapped-op",
    Severity.MEDIUM,
    "TensorFlow graph maps a file region into memory (ImmutableConst)",
    "ImmutableConst maps a named file region into tensors; confirm the region is the model's own "
    "memmapped package and not a host file.",
    atlas=_ATLAS,
    cwe=("CWE-73",),
)
TF_NETWORK_OP = rule(
    "BAS-M214",
    "tf-network-op",
    Severity.HIGH,
    "TensorFlow graph performs network calls (RPC / debugger URLs)",
    "A serving graph should not open network connections. Re-export the model without RPC or debug ops "
    "and serve it without network egress.",
    atlas=_ATLAS,
    cwe=("CWE-918",),
)

_DANGEROUS_OPS: dict[str, tuple[Rule, str]] = {
    "PyFunc": (TF_PYTHON_OP, "runs a registered Python function"),
    "PyFuncStateless": (TF_PYTHON_OP, "runs a registered Python function"),
    "EagerPyFunc": (TF_PYTHON_OP, "runs a registered Python function"),
    "WriteFile": (TF_FILE_WRITE_OP, "writes a file"),
    "DeleteFile": (TF_FILE_WRITE_OP, "deletes a file"),
    "CreateSummaryFileWriter": (TF_FILE_WRITE_OP, "creates an event-file writer"),
    "WriteRawProtoSummary": (TF_FILE_WRITE_OP, "writes summaries to disk"),
    "ReadFile": (TF_FILE_READ_OP, "reads a whole file"),
    "MatchingFiles": (TF_FILE_READ_OP, "lists files matching a glob"),
    "MatchingFilesDataset": (TF_FILE_READ_OP, "lists files matching a glob"),
    "TextLineDataset": (TF_FILE_READ_OP, "reads lines of a file"),
    "TextLineDatasetV2": (TF_FILE_READ_OP, "reads lines of a file"),
    "FixedLengthRecordDataset": (TF_FILE_READ_OP, "reads records of a file"),
    "FixedLengthRecordDatasetV2": (TF_FILE_READ_OP, "reads records of a file"),
    "TFRecordDataset": (TF_FILE_READ_OP, "reads a TFRecord file"),
    "TFRecordDatasetV2": (TF_FILE_READ_OP, "reads a TFRecord file"),
    "ImmutableConst": (TF_MEMORY_MAPPED_OP, "maps a file region"),
    "Rpc": (TF_NETWORK_OP, "issues RPCs"),
    "TryRpc": (TF_NETWORK_OP, "issues RPCs"),
    "RpcCall": (TF_NETWORK_OP, "issues RPCs"),
    "RpcClient": (TF_NETWORK_OP, "opens an RPC client"),
    "DebugIdentity": (TF_NETWORK_OP, "streams tensors to debug URLs"),
    "DebugIdentityV2": (TF_NETWORK_OP, "streams tensors to a debugger"),
    "DebugNanCount": (TF_NETWORK_OP, "streams tensors to debug URLs"),
    "DebugNumericSummary": (TF_NETWORK_OP, "streams tensors to debug URLs"),
}
# Print ops are fine unless they print into a file.
_PRINT_OPS = frozenset({"PrintV2"})
_NODE_NAME, _NODE_OP, _NODE_ATTR = 1, 2, 5
_ATTR_S = 2


def looks_like_savedmodel(data: memoryview) -> bool:
    """Content sniff: SavedModel{schema_version?, meta_graphs} whose first meta graph holds a graph_def."""
    meta: Field | None = None
    try:
        for f in iter_fields(data):
            if f.number == 1 and f.wire_type == VARINT:
                continue
            if f.number == 2 and f.wire_type == LEN:
                meta = meta or f
                continue
            return False
        if meta is None:
            return False
        has_graph = False
        for g in meta.sub():
            if not 1 <= g.number <= 9 or g.wire_type != LEN:
                return False
            has_graph = has_graph or g.number == 2
        return has_graph
    except FormatError:
        return False


def scan_savedmodel(data: memoryview, loc: Location, ctx: ScanContext, depth: int) -> None:
    """Judge every NodeDef of every meta graph and graph function."""
    ctx.mark_scanned(loc, "tf-savedmodel", len(data))
    hits: dict[tuple[str, str], _Hit] = {}
    try:
        meta_graphs = 0
        for f in iter_fields(data):
            if f.number != 2 or f.wire_type != LEN:
                continue
            meta_graphs += 1
            for g in f.sub():
                if g.number == 2 and g.wire_type == LEN:
                    _graph_def(g, hits)
        if meta_graphs == 0:
            raise FormatError("SavedModel has no meta graph", offset=0)
    finally:
        for (op, where), hit in hits.items():
            r, what = _DANGEROUS_OPS.get(op, (TF_FILE_WRITE_OP, "prints into a file"))
            ctx.finding(
                loc,
                r,
                f"op {op} ({what}) in node {hit.name!r} of {where}"
                + (f", {hit.count} nodes in all" if hit.count > 1 else ""),
                offset=hit.offset,
                callable=op,
                count=hit.count,
            )


@dataclass
class _Hit:
    name: str
    offset: int
    count: int = 1


def _graph_def(graph: Field, hits: dict[tuple[str, str], _Hit]) -> None:
    for f in graph.sub():
        if f.wire_type != LEN:
            continue
        if f.number == 1:
            _node_def(f, "the graph", hits)
        elif f.number == 2:  # FunctionDefLibrary
            for fn in f.sub():
                if fn.number == 1 and fn.wire_type == LEN:
                    _function_def(fn, hits)


def _function_def(fn: Field, hits: dict[tuple[str, str], _Hit]) -> None:
    name = "?"
    nodes: list[Field] = []
    for f in fn.sub():
        if f.wire_type != LEN:
            continue
        if f.number == 1:  # OpDef signature: name (1)
            for s in f.sub():
                if s.number == 1 and s.wire_type == LEN:
                    name = s.text(256)
        elif f.number == 3:
            nodes.append(f)
    for n in nodes:
        _node_def(n, f"function {name!r}", hits)


def _node_def(node: Field, where: str, hits: dict[tuple[str, str], _Hit]) -> None:
    name = op = ""
    output_stream = ""
    for f in node.sub():
        if f.wire_type != LEN:
            continue
        if f.number == _NODE_NAME:
            name = f.text(256)
        elif f.number == _NODE_OP:
            op = f.text(256)
        elif f.number == _NODE_ATTR:
            key, value = _attr_entry(f)
            if key == "output_stream" and value is not None:
                output_stream = value
    dangerous = op in _DANGEROUS_OPS or (op in _PRINT_OPS and output_stream.startswith("file://"))
    if not dangerous:
        return
    hit = hits.get((op, where))
    if hit is None:
        hits[(op, where)] = _Hit(name, node.offset)
    else:
        hit.count += 1


def _attr_entry(entry: Field) -> tuple[str, str | None]:
    """A map<string, AttrValue> entry: the key and the AttrValue's string value (``s``), if any."""
    key = ""
    value: str | None = None
    for f in entry.sub():
        if f.wire_type != LEN:
            continue
        if f.number == 1:
            key = f.text(256)
        elif f.number == 2:
            for a in f.sub():
                if a.number == _ATTR_S and a.wire_type == LEN:
                    value = a.text(4096)
    return key, value
