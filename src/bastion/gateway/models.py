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
(``bastion-linear/v1``: a linear, logistic or softmax model as plain JSON, parsed strictly). The models
themselves live in ``predictors`` (``Prediction``, linear-json, scikit-learn), ``onnx_model`` and
``skops_model``; their public names are importable from here too.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bastion.gateway.batching import Batcher
from bastion.gateway.config import ModelFormat, ModelSpec
from bastion.gateway.errors import HttpError, ModelRefused
from bastion.gateway.onnx_model import OnnxModel as OnnxModel
from bastion.gateway.predictors import LINEAR_FORMAT as LINEAR_FORMAT
from bastion.gateway.predictors import LinearModel as LinearModel
from bastion.gateway.predictors import Prediction as Prediction
from bastion.gateway.predictors import SklearnModel as SklearnModel
from bastion.gateway.skops_model import SKOPS_TRUSTED_PACKAGES as SKOPS_TRUSTED_PACKAGES
from bastion.gateway.skops_model import load_skops
from bastion.gateway.skops_model import skops_untrusted as skops_untrusted

if TYPE_CHECKING:
    from bastion.gateway.reference import Reference
    from bastion.gateway.upstream import UpstreamModel

_NUMBERS = frozenset({int, float})


@dataclass
class ServedModel:
    spec: ModelSpec
    sha256: str | None  # of the checked file; None for an upstream model
    impl: LinearModel | SklearnModel | OnnxModel | UpstreamModel
    lo: np.ndarray
    hi: np.ndarray
    reference: Reference | None = None  # the checked training reference, for the extraction detector
    batcher: Batcher | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.spec.batch_rows > 1 and isinstance(self.impl, LinearModel | SklearnModel | OnnxModel):
            self.batcher = Batcher(self.impl.predict, self.spec.batch_rows)

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
        inside = ((self.lo <= x) & (x <= self.hi)).all()  # False for NaN too
        if not inside or not (self._finite_bounds or np.isfinite(x).all()):
            if not np.isfinite(x).all():
                raise HttpError(422, "out-of-range", "features must be finite")
            raise HttpError(422, "out-of-range", "a feature is outside the model's accepted range")
        return x

    @cached_property
    def _finite_bounds(self) -> bool:
        """Finite bounds on every feature: then a row inside them is finite, and one check decides both."""
        return bool(np.isfinite(self.lo).all() and np.isfinite(self.hi).all())

    def predict(self, x: np.ndarray) -> Prediction:
        """In-process models only; ``infer`` serves both kinds."""
        if isinstance(self.impl, LinearModel | SklearnModel | OnnxModel):
            return self.impl.predict(x)
        raise TypeError("an upstream model is asked with infer()")

    async def infer(self, x: np.ndarray, request_id: str) -> Prediction:
        if self.batcher is not None:
            return await self.batcher(x)
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


def _check_reference(spec: ModelSpec, width: int) -> Reference | None:
    """A configured detection reference must be readable, well formed and as wide as the model."""
    if spec.detection.reference is None or not spec.detection.enabled:
        return None
    from bastion.gateway.reference import load_reference

    try:
        return load_reference(spec.detection.reference, width)
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
        reference = _check_reference(spec, spec.features)  # before the client: a refusal leaves nothing open
        upstream = UpstreamModel(spec)
        _check_names(spec, upstream.n_features)
        lo = _bounds(spec.feature_min, upstream.n_features, "feature_min")
        hi = _bounds(spec.feature_max, upstream.n_features, "feature_max")
        return ServedModel(spec, None, upstream, lo, hi, reference)
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
                impl = load_skops(copy)
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
    reference = _check_reference(spec, width)
    return ServedModel(
        spec,
        sha256,
        impl,
        _bounds(spec.feature_min, width, "feature_min"),
        _bounds(spec.feature_max, width, "feature_max"),
        reference,
    )
