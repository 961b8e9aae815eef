# mypy: disable-error-code="import-untyped"
"""Models served in-process, loaded only after they pass the load-time checks.

The file is first copied into a private folder (hashing it on the way), and *that copy* is scanned with
``bastion.scan``, verified against its signed evidence when the configuration asks for it, and only then
deserialised, so the bytes that were checked are the bytes that are loaded (no swap between check and load).
Anything but a ``safe`` scan verdict (for ``linear-json``, which is plain data: ``safe`` or "not a model"),
or evidence that is not ``verified``, refuses the model with the reason.

Formats: ``sklearn-joblib`` (any estimator with ``predict``; ``predict_proba`` when it has one),
``skops`` (a scikit-learn estimator whose types outside skops' defaults are all in the gateway's allowlist),
``onnx`` (ONNX Runtime, CPU only, self-contained graphs with one float input) and ``linear-json``
(``bastion-linear/v1``: a linear, logistic or softmax model as plain JSON, parsed strictly).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.gateway.config import ModelFormat, ModelSpec
from bastion.gateway.errors import HttpError, ModelRefused

if TYPE_CHECKING:
    from bastion.gateway.upstream import UpstreamModel

LINEAR_FORMAT = "bastion-linear/v1"
_NUMBERS = frozenset({int, float})


@dataclass(frozen=True)
class Prediction:
    """Per row: a label (classifiers) or a value (regressors), and class probabilities when known."""

    outputs: list[Any]
    probabilities: np.ndarray | None
    classes: tuple[Any, ...]


class LinearModel:
    def __init__(self, doc: Any) -> None:
        if not isinstance(doc, dict) or doc.get("format") != LINEAR_FORMAT:
            raise ValueError(f"not a {LINEAR_FORMAT} document")
        kind = doc.get("kind")
        if kind not in ("linear", "logistic", "softmax"):
            raise ValueError("kind must be linear, logistic or softmax")
        coef = np.asarray(doc.get("coef"), dtype=np.float64)
        intercept = np.atleast_1d(np.asarray(doc.get("intercept", 0.0), dtype=np.float64))
        if coef.ndim == 1:
            coef = coef[None, :]
        if coef.ndim != 2 or coef.shape[1] == 0 or intercept.shape != (coef.shape[0],):
            raise ValueError("coef must be rows × features and intercept one value per row")
        if not (np.all(np.isfinite(coef)) and np.all(np.isfinite(intercept))):
            raise ValueError("non-finite coefficient")
        classes = tuple(doc.get("classes", ()))
        if kind == "logistic" and (coef.shape[0] != 1 or len(classes) != 2):
            raise ValueError("logistic needs one coefficient row and two classes")
        if kind == "softmax" and len(classes) != coef.shape[0]:
            raise ValueError("softmax needs one coefficient row per class")
        if kind == "linear" and coef.shape[0] != 1:
            raise ValueError("linear needs one coefficient row")
        self.kind, self.coef, self.intercept, self.classes = kind, coef, intercept, classes
        self.n_features = int(coef.shape[1])

    def predict(self, x: np.ndarray) -> Prediction:
        z = x @ self.coef.T + self.intercept
        if self.kind == "linear":
            return Prediction([float(v) for v in z[:, 0]], None, ())
        if self.kind == "logistic":
            p1 = 1.0 / (1.0 + np.exp(-np.clip(z[:, 0], -500, 500)))
            proba = np.stack([1.0 - p1, p1], axis=1)
        else:
            e = np.exp(z - z.max(axis=1, keepdims=True))
            proba = e / e.sum(axis=1, keepdims=True)
        labels = [self.classes[i] for i in proba.argmax(axis=1)]
        return Prediction(labels, proba, self.classes)


class SklearnModel:
    def __init__(self, estimator: Any) -> None:
        if not callable(getattr(estimator, "predict", None)):
            raise ValueError("the object has no predict method")
        self.estimator = estimator
        n = getattr(estimator, "n_features_in_", None)
        if not isinstance(n, int | np.integer):
            raise ValueError("the estimator is not fitted (no n_features_in_)")
        self.n_features = int(n)
        self.classes: tuple[Any, ...] = tuple(_plain(c) for c in getattr(estimator, "classes_", ()))

    def predict(self, x: np.ndarray) -> Prediction:
        if self.classes and callable(getattr(self.estimator, "predict_proba", None)):
            proba = np.asarray(self.estimator.predict_proba(x), dtype=np.float64)
            labels = [self.classes[i] for i in proba.argmax(axis=1)]
            return Prediction(labels, proba, self.classes)
        return Prediction([_plain(v) for v in self.estimator.predict(x)], None, self.classes)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


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


# skops: the types a file may add to skops' own defaults, beyond which nothing is trusted. A type must sit
# under one of these packages *and* be allowed by Bastion's pickle catalogue (the scikit-learn / NumPy types
# it knows rebuild data, not code).
SKOPS_TRUSTED_PACKAGES = ("sklearn.", "numpy.")


def skops_untrusted(types: list[str]) -> list[str]:
    """The types of ``types`` (skops' ``get_untrusted_types``) that the gateway does not trust."""
    from bastion.scanners.pickle.catalogue import default_catalogue

    catalogue = default_catalogue()
    refused = []
    for qualname in types:
        module, _, name = qualname.rpartition(".")
        if not (
            qualname.startswith(SKOPS_TRUSTED_PACKAGES)
            and catalogue.entry(module, name) is not None
            and not catalogue.denied(module, name)
        ):
            refused.append(qualname)
    return refused


def _load_skops(path: Path) -> SklearnModel:
    import zipfile

    import skops.io as sio
    from sklearn.base import BaseEstimator

    try:
        types = sio.get_untrusted_types(file=path)
        refused = skops_untrusted(types)
        if refused:
            raise ModelRefused(
                f"skops file names types outside the gateway's allowlist: {', '.join(refused)}"
            )
        estimator = sio.load(path, trusted=types)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"not a readable skops file ({type(exc).__name__}: {exc})") from None
    if not isinstance(estimator, BaseEstimator):
        raise ValueError(f"the file holds a {type(estimator).__name__}, not a scikit-learn estimator")
    return SklearnModel(estimator)


@dataclass
class ServedModel:
    spec: ModelSpec
    sha256: str | None  # of the checked file; None for an upstream model
    impl: LinearModel | SklearnModel | OnnxModel | UpstreamModel
    lo: np.ndarray
    hi: np.ndarray

    @property
    def n_features(self) -> int:
        return self.impl.n_features

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.spec.name,
            "versions": [self.spec.version],
            "platform": self.spec.format.value if self.spec.format else "upstream",
            "environment": self.spec.environment,
            "sha256": self.sha256,
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, self.n_features]}],
            "classes": list(self.impl.classes),
        }

    def validate(self, rows: Any, max_rows: int) -> np.ndarray:
        """Rows of finite numbers, the model's width, inside its declared ranges; else 422 (or 413).

        The checks run over the parsed JSON in C (``map``, ``set``) rather than a Python loop per value.
        """
        if not isinstance(rows, list) or not rows:
            raise HttpError(422, "bad-shape", "instances must be a non-empty list of rows")
        if len(rows) > max_rows:
            raise HttpError(413, "too-many-rows", f"at most {max_rows} rows per request")
        width = self.n_features
        # JSON gives exact lists, ints and floats: the type sets decide at once, the exact check runs only
        # when they do not (subclasses); a bool is an int to Python, never a number here
        shape_error = HttpError(422, "bad-shape", f"each row must be a list of {width} numbers")
        if set(map(type, rows)) != {list} and not all(isinstance(r, list) for r in rows):
            raise shape_error
        if set(map(len, rows)) != {width}:
            raise shape_error
        if not set(map(type, chain.from_iterable(rows))) <= _NUMBERS and any(
            isinstance(v, bool) or not isinstance(v, int | float) for v in chain.from_iterable(rows)
        ):
            raise HttpError(422, "bad-type", "features must be numbers")
        x = np.asarray(rows, dtype=np.float64)
        if not np.isfinite(x).all():
            raise HttpError(422, "out-of-range", "features must be finite")
        if (x < self.lo).any() or (x > self.hi).any():
            raise HttpError(422, "out-of-range", "a feature is outside the model's accepted range")
        return x

    def predict(self, x: np.ndarray) -> Prediction:
        """In-process models only; ``infer`` serves both kinds."""
        if isinstance(self.impl, LinearModel | SklearnModel | OnnxModel):
            return self.impl.predict(x)
        raise TypeError("an upstream model is asked with infer()")

    async def infer(self, x: np.ndarray, request_id: str) -> Prediction:
        if isinstance(self.impl, LinearModel | SklearnModel | OnnxModel):
            return self.impl.predict(x)
        return await self.impl.predict(x, request_id)


def _bounds(value: tuple[float, ...] | float, width: int, name: str) -> np.ndarray:
    if isinstance(value, tuple):
        if len(value) != width:
            raise ModelRefused(f"{name} has {len(value)} values but the model takes {width} features")
        return np.asarray(value, dtype=np.float64)
    return np.full(width, float(value))


def _check_names(spec: ModelSpec, width: int) -> None:
    if spec.feature_names is not None and len(spec.feature_names) != width:
        raise ModelRefused(
            f"model {spec.name!r}: feature_names has {len(spec.feature_names)} names for {width} features"
        )


def _check_reference(spec: ModelSpec, width: int) -> None:
    """A configured detection reference must be readable, well formed and as wide as the model."""
    if spec.detection.reference is None or not spec.detection.enabled:
        return
    from bastion.gateway.detection import load_reference

    try:
        load_reference(spec.detection.reference, width)
    except ModelRefused as exc:
        raise ModelRefused(f"model {spec.name!r}: {exc.message}") from None


def _copy_hashing(source: Path, dest: Path) -> str:
    digest = hashlib.sha256()
    with source.open("rb") as src, dest.open("xb") as dst:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            dst.write(chunk)
    return digest.hexdigest()


def _keyring_root(path: Path | None) -> Path | None:
    """``keyring`` is a ``BASTION_HOME`` folder or the ``trust.json`` in one; unset: ``$BASTION_HOME``."""
    if path is not None and path.name == "trust.json" and not path.is_dir():
        return path.parent
    return path


def _check_evidence(spec: ModelSpec, copy: Path) -> None:
    """Verify the *copy* against its signed ``file:`` attestation; refuse with the causes otherwise.

    Anything the evidence layer cannot decide (no bundle, a malformed one, an unreadable trust file, a
    required signer that is not in it) is a refusal too, never a crash and never a pass.
    """
    evidence = spec.require_evidence
    if evidence is None:
        return
    from bastion.errors import BastionError
    from bastion.evidence.bundle import read_bundles
    from bastion.evidence.keys import Keyring
    from bastion.evidence.targets import Target, TargetKind
    from bastion.evidence.verify import Status, verify

    refuse = f"model {spec.name!r}: evidence"
    if not evidence.bundle.is_file():
        raise ModelRefused(f"{refuse} undecided (no-evidence): no bundle at {evidence.bundle}")
    try:
        bundles = read_bundles(evidence.bundle)
        ring = Keyring(_keyring_root(evidence.keyring))
        if evidence.signer is not None:
            ring.find(evidence.signer)  # a required signer that is not trusted here is a refusal
        result = verify(Target(TargetKind.FILE, copy), bundles, ring, expected_signer=evidence.signer)
    except BastionError as exc:
        raise ModelRefused(f"{refuse} undecided: {exc.message}") from None
    if result.status is not Status.VERIFIED:
        causes = ", ".join(sorted({p.cause.value for p in result.problems})) or result.status.value
        detail = result.problems[0].detail if result.problems else ""
        raise ModelRefused(f"{refuse} {result.status.value} ({causes}): {detail}")


_INSTALL = {
    ModelFormat.ONNX: "pip install 'bastion-mlsecops[onnx-serving]'",
    ModelFormat.SKOPS: "pip install 'bastion-mlsecops[gateway]'",
}


def load_model(spec: ModelSpec) -> ServedModel:
    """Copy, scan, verify, then (only then) deserialise. Raises ``ModelRefused`` with the reason."""
    import bastion
    from bastion.core import Verdict

    if spec.upstream is not None:  # nothing is loaded: the upstream server holds the model
        from bastion.gateway.upstream import UpstreamModel

        assert spec.features is not None  # the config requires it for an upstream model
        _check_reference(spec, spec.features)  # before the client exists: a refusal leaves nothing open
        upstream = UpstreamModel(spec)
        _check_names(spec, upstream.n_features)
        lo = _bounds(spec.feature_min, upstream.n_features, "feature_min")
        return ServedModel(
            spec, None, upstream, lo, _bounds(spec.feature_max, upstream.n_features, "feature_max")
        )
    assert spec.path is not None and spec.format is not None  # the config requires both without upstream
    if not spec.path.is_file():
        raise ModelRefused(f"model {spec.name!r}: {spec.path} is not a file")
    workdir = Path(tempfile.mkdtemp(prefix="bastion-model-"))
    try:
        copy = workdir / spec.path.name
        sha256 = _copy_hashing(spec.path, copy)
        report = bastion.scan([copy])
        # A linear-json model is data, parsed strictly below with no code path: the scanner may call it
        # "not a model" (unsupported), which is acceptable for it alone. Unsafe or undecided never is.
        accepted = (
            {Verdict.SAFE, Verdict.UNSUPPORTED} if spec.format is ModelFormat.LINEAR_JSON else {Verdict.SAFE}
        )
        if report.verdict not in accepted:
            what = "; ".join(
                f"{f.severity.name.lower()} {f.callable or f.rule_id}" for f in report.findings[:3]
            )
            what = what or "; ".join(p.message for p in report.problems[:3]) or report.verdict.value
            raise ModelRefused(f"model {spec.name!r}: scan verdict {report.verdict.value} ({what})")
        _check_evidence(spec, copy)
        impl: LinearModel | SklearnModel | OnnxModel
        try:
            if spec.format is ModelFormat.SKLEARN_JOBLIB:
                import joblib

                impl = SklearnModel(joblib.load(copy))
            elif spec.format is ModelFormat.SKOPS:
                impl = _load_skops(copy)
            elif spec.format is ModelFormat.ONNX:
                impl = OnnxModel(copy.read_bytes(), spec.classes, spec.threads or 1)
            else:
                from bastion.gateway.wire import loads_strict

                impl = LinearModel(loads_strict(copy.read_bytes()))
        except (HttpError, ModelRefused) as exc:
            raise ModelRefused(f"model {spec.name!r}: {exc.message}") from None
        except ImportError as exc:
            install = _INSTALL.get(spec.format, "pip install 'bastion-mlsecops[gateway]'")
            raise ModelRefused(
                f"model {spec.name!r}: format {spec.format.value} needs {exc.name or 'a package'}: {install}"
            ) from None
        except (ValueError, TypeError, OSError, EOFError) as exc:
            raise ModelRefused(f"model {spec.name!r}: cannot load as {spec.format.value}: {exc}") from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    width = impl.n_features
    _check_names(spec, width)
    _check_reference(spec, width)
    return ServedModel(
        spec,
        sha256,
        impl,
        _bounds(spec.feature_min, width, "feature_min"),
        _bounds(spec.feature_max, width, "feature_max"),
    )
