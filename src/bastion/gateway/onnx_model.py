# mypy: disable-error-code="import-untyped"
"""ONNX models served in-process on ONNX Runtime's CPU provider (imported only when one is loaded).

Only self-contained graphs are served: a tensor anywhere in the ModelProto (graphs, subgraphs, training
graphs, functions) that keeps its data in an external file refuses the model, so the checked file is all
that is loaded. One float input ``[rows, features]``; class probabilities or values out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bastion.gateway.errors import HttpError
from bastion.gateway.predictors import Prediction

# ONNX: tensor element types ONNX Runtime reports, and the NumPy dtype a float one is fed / read as
_ONNX_FLOATS = {"tensor(float)": np.float32, "tensor(double)": np.float64}
_PROBABILITY_OUTPUTS = ("output_probability", "probabilities")


class OnnxModel:
    """An ONNX graph on ONNX Runtime's CPU provider: one float input ``[rows, features]`` whose batch
    dimension is dynamic, serving class probabilities ``[rows, classes]`` (labels from ``classes``) or
    values ``[rows]`` / ``[rows, 1]``."""

    def __init__(self, data: bytes, classes: tuple[Any, ...], threads: int) -> None:
        import onnxruntime as ort

        from bastion.scanners.interface import FormatError

        try:
            external = _onnx_external_tensors(data)
        except FormatError as exc:
            raise ValueError(f"not a readable ONNX model ({exc})") from None
        if external:
            names = ", ".join(repr(n) for n in external[:3])
            raise ValueError(
                f"tensors {names} keep their data in external files: the gateway serves only self-contained "
                "models (the checked file is all that is loaded); re-export with the weights embedded"
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: a refusal says why through ModelRefused
        try:
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except _ort_errors() as exc:
            raise ValueError(f"ONNX Runtime cannot load it ({type(exc).__name__}: {exc})") from None
        inputs = session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"the graph has {len(inputs)} inputs; the gateway serves one [rows, features]")
        (feed,) = inputs
        if feed.type not in _ONNX_FLOATS:
            raise ValueError(f"input {feed.name!r} is {feed.type}; the gateway feeds float or double")
        shape = list(feed.shape)
        if len(shape) != 2 or isinstance(shape[0], int) or not isinstance(shape[1], int) or shape[1] < 1:
            raise ValueError(
                f"input {feed.name!r} has shape {shape}; the gateway needs [rows, features] with a dynamic "
                "batch dimension and a fixed width"
            )
        self.session, self.input_name, self.input_dtype = session, feed.name, _ONNX_FLOATS[feed.type]
        self.n_features = int(shape[1])
        self.output_name, width = self._pick_output(session.get_outputs())
        if width is None:  # values
            if classes:
                raise ValueError("classes is set but the model outputs values, not probabilities")
            self.classes: tuple[Any, ...] = ()
        else:
            if not classes:
                raise ValueError(f"the model outputs probabilities over {width} classes: set classes")
            if len(classes) != width:
                raise ValueError(f"classes names {len(classes)} classes but the model outputs {width}")
            self.classes = classes

    @staticmethod
    def _pick_output(outputs: list[Any]) -> tuple[str, int | None]:
        """The output served and its class count (None: values). Probabilities come first."""
        named = [o for o in outputs if o.name in _PROBABILITY_OUTPUTS]
        candidates = named or (outputs if len(outputs) == 1 else [])
        if not candidates:
            found = ", ".join(f"{o.name} {o.type}" for o in outputs)
            raise ValueError(f"outputs [{found}]: expected one probabilities or values output")
        out = candidates[0]
        if out.type not in _ONNX_FLOATS:
            hint = " (a ZipMap: re-export with zipmap disabled)" if out.type.startswith("seq(") else ""
            raise ValueError(f"output {out.name!r} is {out.type}, not a float tensor{hint}")
        shape = list(out.shape)
        if len(shape) == 1 or (len(shape) == 2 and shape[1] == 1 and not named):
            return out.name, None
        if len(shape) == 2 and isinstance(shape[1], int) and shape[1] >= 2:
            return out.name, shape[1]
        raise ValueError(
            f"output {out.name!r} has shape {shape}; expected [rows, classes], [rows] or [rows, 1]"
        )

    def predict(self, x: np.ndarray) -> Prediction:
        feed = {self.input_name: np.ascontiguousarray(x, dtype=self.input_dtype)}
        (raw,) = self.session.run([self.output_name], feed)
        y = np.asarray(raw, dtype=np.float64)
        rows = x.shape[0]
        if not self.classes:
            if y.shape not in ((rows,), (rows, 1)) or not np.isfinite(y).all():
                raise HttpError(500, "model-error", "the model returned malformed values")
            return Prediction([float(v) for v in y.reshape(rows)], None, ())
        if y.shape != (rows, len(self.classes)) or not np.isfinite(y).all():
            raise HttpError(500, "model-error", "the model returned malformed probabilities")
        return Prediction([self.classes[i] for i in y.argmax(axis=1)], y, self.classes)


def _ort_errors() -> tuple[type[Exception], ...]:
    """ONNX Runtime's own exception classes (pybind11 derives them from ``Exception`` directly)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    own = (v for v in vars(state).values() if isinstance(v, type) and issubclass(v, Exception))
    return (*own, RuntimeError)


# ONNX protobuf field numbers (onnx/onnx.proto) the external-data walk follows
_GRAPH_FIELDS = {1: "node", 5: "tensor", 15: "sparse"}
_NODE_ATTRIBUTE = 5
_ATTR_FIELDS = {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"}
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14


def _onnx_external_tensors(data: bytes) -> list[str]:
    """Names of the tensors anywhere in a ModelProto (graphs, subgraphs, training graphs, functions) whose
    data lives in an external file. The scanner has already judged where such files point."""
    from bastion.scanners.protobuf import LEN, VARINT, Field, iter_fields

    found: list[str] = []
    stack: list[tuple[str, Field]] = []
    for f in iter_fields(memoryview(data)):
        if f.wire_type != LEN:
            continue
        if f.number == 7:  # graph
            stack.append(("graph", f))
        elif f.number == 20:  # training_info: initialization, algorithm
            stack.extend(("graph", g) for g in f.sub() if g.number in (1, 2) and g.wire_type == LEN)
        elif f.number == 25:  # functions: their nodes
            stack.extend(("node", g) for g in f.sub() if g.number == 7 and g.wire_type == LEN)
    while stack:
        kind, msg = stack.pop()
        subs = [g for g in msg.sub() if g.wire_type in (LEN, VARINT)]
        if kind == "tensor":
            external = any(
                (g.number == _TENSOR_EXTERNAL_DATA and g.wire_type == LEN)
                or (g.number == _TENSOR_DATA_LOCATION and g.wire_type == VARINT and g.value == 1)
                for g in subs
            )
            if external:
                found.append(
                    next((g.text() for g in subs if g.number == _TENSOR_NAME and g.wire_type == LEN), "")
                )
            continue
        table = {"graph": _GRAPH_FIELDS, "node": {_NODE_ATTRIBUTE: "attribute"}, "attribute": _ATTR_FIELDS,
                 "sparse": {1: "tensor", 2: "tensor"}}[kind]  # fmt: skip
        stack.extend((table[g.number], g) for g in subs if g.wire_type == LEN and g.number in table)
    return found
