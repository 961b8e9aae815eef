"""ONNX (``ModelProto``) scanner, reading the protobuf wire format without the ``onnx`` package.

What an ONNX file can do to the process that loads it:

* tensors with external data name a file to read next to the model; a ``location`` that is
  absolute or climbs out with ``..`` reads (and with ``onnx.save`` writes) arbitrary files
  (CVE-2022-25882, CVE-2024-27318);
* nodes in a custom operator domain need a native custom-op library to run, which is code the
  model asks you to load.

The walk covers the main graph, subgraphs held in node attributes (If / Loop / Scan bodies),
training graphs and model-local functions, with a bounded depth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bastion.core import Severity
from bastion.scanners.interface import FormatError, Location, ScanContext, rule
from bastion.scanners.protobuf import LEN, VARINT, Field, check_depth, iter_fields

ONNX_EXTERNAL_DATA_TRAVERSAL = rule(
    "BAS-M201",
    "onnx-external-data-path-traversal",
    Severity.CRITICAL,
    "ONNX tensor external data points outside the model directory",
    "Do not load this model. External data locations must be plain relative file names inside the model "
    "directory; an absolute path, a drive letter or a '..' component reads (or on save, overwrites) "
    "arbitrary files (CVE-2022-25882, CVE-2024-27318). Upgrade onnx to >= 1.16 and re-export the model "
    "with its weights embedded or stored next to it.",
    atlas=("AML.T0011.000", "AML.T0010", "AML.M0011", "AML.M0014"),
    cwe=("CWE-22", "CWE-59"),
)
ONNX_CUSTOM_OP_DOMAIN = rule(
    "BAS-M202",
    "onnx-custom-operator",
    Severity.MEDIUM,
    "ONNX node uses a custom operator domain that needs a native library",
    "Running this model requires registering a custom-operator shared library. Only load it with a custom-op "
    "library you built or obtained from a trusted source; otherwise re-export the model with standard ONNX "
    "operators.",
    atlas=("AML.T0011.000", "AML.T0010", "AML.M0011", "AML.M0014"),
    cwe=("CWE-829",),
)
ONNX_CONTRIB_OP_DOMAIN = rule(
    "BAS-M203",
    "onnx-contrib-operator",
    Severity.LOW,
    "ONNX node uses ONNX Runtime contrib operators (com.microsoft)",
    "The model runs only on ONNX Runtime builds that ship the com.microsoft contrib operators. This is not "
    "code execution by itself; keep ONNX Runtime up to date, as contrib kernels have had memory-safety bugs.",
    atlas=("AML.T0010", "AML.M0014"),
    cwe=("CWE-829",),
)
ONNX_EXTERNAL_DATA_AMBIGUOUS = rule(
    "BAS-M204",
    "onnx-external-data-ambiguous",
    Severity.MEDIUM,
    "ONNX tensor external data entry is ambiguous",
    "A tensor's external_data repeats the 'location' key or is marked EXTERNAL without one; different "
    "readers resolve it differently (parser differential). Re-export the model with onnx.save and "
    "save_as_external_data=True from a trusted copy.",
    cwe=("CWE-436",),
)

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training", "ai.onnx.preview.training"})
MAX_GRAPH_DEPTH = 32

_DRIVE = re.compile(r"^[A-Za-z]:")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# Field numbers (onnx/onnx.proto).
_MODEL_IR_VERSION, _MODEL_GRAPH, _MODEL_TRAINING_INFO, _MODEL_FUNCTIONS = 1, 7, 20, 25
_MODEL_LEN_FIELDS = frozenset({2, 3, 4, 6, 7, 8, 14, 20, 25})
_MODEL_VARINT_FIELDS = frozenset({1, 5})
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER = 1, 5, 15
_NODE_OP_TYPE, _NODE_ATTRIBUTE, _NODE_DOMAIN, _NODE_NAME = 4, 5, 7, 3
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS, _ATTR_SPARSE, _ATTR_SPARSES = 5, 6, 10, 11, 22, 23
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_FUNCTION_NAME, _FUNCTION_NODE, _FUNCTION_DOMAIN = 1, 7, 10
_TRAINING_GRAPHS = (1, 2)  # TrainingInfoProto.initialization, .algorithm
_EXTERNAL = 1


def looks_like_onnx(data: memoryview) -> bool:
    """Content sniff: the top-level fields parse as a ModelProto with ir_version and a graph."""
    has_ir = has_graph = False
    try:
        for f in iter_fields(data):
            if f.number in _MODEL_VARINT_FIELDS:
                if f.wire_type != VARINT:
                    return False
                has_ir = has_ir or f.number == _MODEL_IR_VERSION
            elif f.number in _MODEL_LEN_FIELDS:
                if f.wire_type != LEN:
                    return False
                has_graph = has_graph or f.number == _MODEL_GRAPH
            else:
                return False
    except FormatError:
        return False
    return has_ir and has_graph


def scan_onnx(data: memoryview, loc: Location, ctx: ScanContext, depth: int) -> None:
    """Walk a ModelProto: external data locations, operator domains, subgraphs and functions."""
    ctx.mark_scanned(loc, "onnx", len(data))
    walker = _Walker(loc, ctx)
    try:
        has_graph = False
        for f in iter_fields(data):
            if f.number == _MODEL_GRAPH and f.wire_type == LEN:
                has_graph = True
                walker.graph(f, 1)
            elif f.number == _MODEL_TRAINING_INFO and f.wire_type == LEN:
                for g in f.sub():
                    if g.number in _TRAINING_GRAPHS and g.wire_type == LEN:
                        walker.graph(g, 2)
            elif f.number == _MODEL_FUNCTIONS and f.wire_type == LEN:
                walker.function(f, 1)
        if not has_graph:
            raise FormatError("ONNX model has no graph", offset=0)
    finally:
        walker.report_ops()


@dataclass
class _OpUse:
    offset: int
    count: int = 1


@dataclass
class _Walker:
    loc: Location
    ctx: ScanContext
    ops: dict[tuple[str, str], _OpUse] = field(default_factory=dict)
    local_functions: set[tuple[str, str]] = field(default_factory=set)

    def graph(self, g: Field, depth: int) -> None:
        check_depth(depth, g.offset, MAX_GRAPH_DEPTH)
        for f in g.sub():
            if f.wire_type != LEN:
                continue
            if f.number == _GRAPH_NODE:
                self.node(f, depth)
            elif f.number == _GRAPH_INITIALIZER:
                self.tensor(f)
            elif f.number == _GRAPH_SPARSE_INITIALIZER:
                self.sparse_tensor(f)

    def function(self, fn: Field, depth: int) -> None:
        check_depth(depth, fn.offset, MAX_GRAPH_DEPTH)
        name = domain = ""
        nodes: list[Field] = []
        for f in fn.sub():
            if f.wire_type != LEN:
                continue
            if f.number == _FUNCTION_NAME:
                name = f.text()
            elif f.number == _FUNCTION_DOMAIN:
                domain = f.text()
            elif f.number == _FUNCTION_NODE:
                nodes.append(f)
        self.local_functions.add((domain, name))
        for n in nodes:
            self.node(n, depth)

    def node(self, n: Field, depth: int) -> None:
        op_type = domain = ""
        for f in n.sub():
            if f.wire_type != LEN:
                continue
            if f.number == _NODE_OP_TYPE:
                op_type = f.text()
            elif f.number == _NODE_DOMAIN:
                domain = f.text()
            elif f.number == _NODE_ATTRIBUTE:
                self.attribute(f, depth)
        if domain not in STANDARD_DOMAINS:
            use = self.ops.get((domain, op_type))
            if use is None:
                self.ops[(domain, op_type)] = _OpUse(n.offset)
            else:
                use.count += 1

    def attribute(self, a: Field, depth: int) -> None:
        for f in a.sub():
            if f.wire_type != LEN:
                continue
            if f.number in (_ATTR_G, _ATTR_GRAPHS):
                self.graph(f, depth + 1)
            elif f.number in (_ATTR_T, _ATTR_TENSORS):
                self.tensor(f)
            elif f.number in (_ATTR_SPARSE, _ATTR_SPARSES):
                self.sparse_tensor(f)

    def sparse_tensor(self, s: Field) -> None:
        for f in s.sub():
            if f.wire_type == LEN and f.number in (_SPARSE_VALUES, _SPARSE_INDICES):
                self.tensor(f)

    def tensor(self, t: Field) -> None:
        name = ""
        external = False
        locations: list[tuple[str, int]] = []
        for f in t.sub():
            if f.number == _TENSOR_NAME and f.wire_type == LEN:
                name = f.text()
            elif f.number == _TENSOR_DATA_LOCATION and f.wire_type == VARINT:
                external = f.value == _EXTERNAL
            elif f.number == _TENSOR_EXTERNAL_DATA and f.wire_type == LEN:
                key, value = _string_entry(f)
                if key == "location":
                    locations.append((value, f.offset))
        if not locations:
            if external:
                self.ctx.finding(
                    self.loc,
                    ONNX_EXTERNAL_DATA_AMBIGUOUS,
                    f"tensor {name!r} is marked EXTERNAL but has no 'location'",
                    offset=t.offset,
                )
            return
        if len(locations) > 1:
            self.ctx.finding(
                self.loc,
                ONNX_EXTERNAL_DATA_AMBIGUOUS,
                f"tensor {name!r} has {len(locations)} external data 'location' entries: "
                + ", ".join(repr(v) for v, _ in locations),
                offset=locations[1][1],
            )
        for value, offset in locations:
            why = unsafe_location_reason(value)
            if why is not None:
                self.ctx.finding(
                    self.loc,
                    ONNX_EXTERNAL_DATA_TRAVERSAL,
                    f"tensor {name!r} reads external data from {value!r}: {why}",
                    offset=offset,
                )

    def report_ops(self) -> None:
        for (domain, op_type), use in self.ops.items():
            if (domain, op_type) in self.local_functions:
                continue  # a function defined in the model itself: expanded, no native code
            contrib = domain == "com.microsoft" or domain.startswith("com.microsoft.")
            r = ONNX_CONTRIB_OP_DOMAIN if contrib else ONNX_CUSTOM_OP_DOMAIN
            self.ctx.finding(
                self.loc,
                r,
                f"operator {op_type!r} from domain {domain!r}"
                + (f" used by {use.count} nodes" if use.count > 1 else ""),
                offset=use.offset,
                callable=f"{domain}::{op_type}",
                count=use.count,
            )


def _string_entry(f: Field) -> tuple[str, str]:
    key = value = ""
    for g in f.sub():
        if g.wire_type == LEN and g.number == 1:
            key = g.text()
        elif g.wire_type == LEN and g.number == 2:
            value = g.text()
    return key, value


def unsafe_location_reason(location: str) -> str | None:
    """Why an external-data location escapes the model directory, or None if it stays inside."""
    if not location:
        return "empty location (resolves to the model directory itself)"
    if "\x00" in location:
        return "NUL byte in the path"
    if _SCHEME.match(location):
        return "URL instead of a relative file name"
    if location.startswith(("/", "\\")):
        return "absolute path"
    if _DRIVE.match(location):
        return "Windows drive path"
    if location.startswith("~"):
        return "home-directory path"
    parts = re.split(r"[\\/]+", location)
    # Windows drops trailing dots and spaces, so '.. ' and '...' behave like '..'.
    if any(".." in p and not p.strip(". ") for p in parts):
        return "'..' component climbs out of the model directory"
    if ":" in location:
        return "drive letter or alternate data stream in the path"
    return None
