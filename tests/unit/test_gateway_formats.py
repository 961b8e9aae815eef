"""The gateway's ``onnx`` and ``skops`` formats: served after the checks, refused with a reason otherwise.

ONNX models are built here with ``onnx.helper`` (a MatMul + Add + Softmax classifier and a linear regressor,
both with a dynamic batch dimension) and their answers compared with NumPy over the same weights; skops files
are real ``skops.io.dump`` output, tampered with from code.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
sio = pytest.importorskip("skops.io")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402 - after the skips above
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.utils import Bunch  # noqa: E402

from bastion.errors import ConfigError  # noqa: E402
from bastion.gateway.app import build_app  # noqa: E402
from bastion.gateway.config import ModelFormat, ModelSpec, parse_config  # noqa: E402
from bastion.gateway.errors import ModelRefused  # noqa: E402
from bastion.gateway.models import OnnxModel, SklearnModel, load_model, skops_untrusted  # noqa: E402
from tests.gateway_helpers import FEATURES, bearer, client, make_data, make_setup  # noqa: E402

CLASSES = ("low", "mid", "high")
RNG = np.random.default_rng(7)
W = RNG.normal(size=(FEATURES, len(CLASSES))).astype(np.float32)
B = RNG.normal(size=len(CLASSES)).astype(np.float32)
W_REG = RNG.normal(size=(FEATURES, 1)).astype(np.float32)
B_REG = np.asarray([0.5], dtype=np.float32)


def softmax(x: np.ndarray) -> np.ndarray:
    z = x @ W.astype(np.float64) + B
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=1, keepdims=True)
    return out


def _model(
    nodes: list[Any],
    inputs: list[Any],
    outputs: list[Any],
    weights: dict[str, np.ndarray],
    **opsets: int,
) -> Any:
    graph = helper.make_graph(
        nodes, "g", inputs, outputs, [numpy_helper.from_array(v, k) for k, v in weights.items()]
    )
    imports = [helper.make_opsetid("", 17)] + [helper.make_opsetid(d, v) for d, v in opsets.items()]
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    return model


def classifier(batch: str | int = "N", elem: int = TensorProto.FLOAT, out: str = "probabilities") -> Any:
    """softmax(x @ W + b): one float input [batch, FEATURES], probabilities [batch, 3]."""
    w, b = (W, B) if elem == TensorProto.FLOAT else (W.astype(np.float64), B.astype(np.float64))
    return _model(
        [
            helper.make_node("MatMul", ["x", "W"], ["z0"]),
            helper.make_node("Add", ["z0", "b"], ["z"]),
            helper.make_node("Softmax", ["z"], [out], axis=1),
        ],
        [helper.make_tensor_value_info("x", elem, [batch, FEATURES])],
        [helper.make_tensor_value_info(out, elem, [batch, len(CLASSES)])],
        {"W": w, "b": b},
    )


def regressor(flat: bool = False) -> Any:
    """x @ w + b as [N, 1], or [N] when ``flat``."""
    nodes = [helper.make_node("MatMul", ["x", "W"], ["z0"]), helper.make_node("Add", ["z0", "b"], ["y1"])]
    weights = {"W": W_REG, "b": B_REG}
    if flat:
        nodes.append(helper.make_node("Reshape", ["y1", "flat"], ["y"]))
        weights["flat"] = np.asarray([-1], dtype=np.int64)
    shape: list[Any] = ["N"] if flat else ["N", 1]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", FEATURES])],
        [helper.make_tensor_value_info("y" if flat else "y1", TensorProto.FLOAT, shape)],
        weights,
    )


def save(model: Any, path: Path) -> Path:
    onnx.save(model, path)
    return path


def spec(path: Path, fmt: ModelFormat, **extra: Any) -> ModelSpec:
    return ModelSpec(name="m", environment="prod", path=path, format=fmt, **extra)


def refused(s: ModelSpec) -> str:
    with pytest.raises(ModelRefused) as info:
        load_model(s)
    assert info.value.message.startswith("model 'm': ")
    return info.value.message


# -- ONNX: served ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("elem", [TensorProto.FLOAT, TensorProto.DOUBLE])
def test_an_onnx_classifier_serves_the_probabilities_numpy_computes(tmp_path: Path, elem: int) -> None:
    served = load_model(
        spec(save(classifier(elem=elem), tmp_path / "m.onnx"), ModelFormat.ONNX, classes=CLASSES)
    )
    assert isinstance(served.impl, OnnxModel)
    assert served.n_features == FEATURES and served.impl.classes == CLASSES
    assert served.impl.session.get_providers() == ["CPUExecutionProvider"]
    assert served.impl.session.get_session_options().intra_op_num_threads == 1
    x = RNG.normal(size=(33, FEATURES))
    got = served.predict(x)
    want = softmax(x)
    assert got.probabilities is not None and got.probabilities.shape == (33, 3)
    np.testing.assert_allclose(got.probabilities, want, atol=1e-5)
    assert got.outputs == [CLASSES[i] for i in want.argmax(axis=1)]
    meta = served.metadata()
    assert meta["platform"] == "onnx" and meta["classes"] == list(CLASSES)
    assert meta["inputs"][0]["shape"] == [-1, FEATURES]


@pytest.mark.parametrize("flat", [False, True])
def test_an_onnx_regressor_serves_values(tmp_path: Path, flat: bool) -> None:
    served = load_model(spec(save(regressor(flat), tmp_path / "r.onnx"), ModelFormat.ONNX, threads=2))
    assert isinstance(served.impl, OnnxModel)
    assert served.impl.session.get_session_options().intra_op_num_threads == 2
    x = RNG.normal(size=(9, FEATURES))
    got = served.predict(x)
    assert got.probabilities is None and got.classes == ()
    np.testing.assert_allclose(got.outputs, (x @ W_REG.astype(np.float64) + B_REG)[:, 0], atol=1e-5)
    assert all(isinstance(v, float) for v in got.outputs)


def test_sklearn_onnx_style_outputs_serve_output_probability(tmp_path: Path) -> None:
    """A label output beside ``output_probability`` (exported with zipmap off): probabilities are served."""
    model = classifier(out="output_probability")
    model.graph.node.append(helper.make_node("ArgMax", ["output_probability"], ["output_label"], axis=1))
    model.graph.output.append(helper.make_tensor_value_info("output_label", TensorProto.INT64, ["N", 1]))
    served = load_model(spec(save(model, tmp_path / "m.onnx"), ModelFormat.ONNX, classes=CLASSES))
    x = RNG.normal(size=(4, FEATURES))
    np.testing.assert_allclose(served.predict(x).probabilities, softmax(x), atol=1e-5)


# -- ONNX: refused -----------------------------------------------------------------------------------------


def _two_inputs() -> Any:
    return _model(
        [helper.make_node("Add", ["x", "y"], ["z"])],
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", FEATURES]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", FEATURES]),
        ],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", FEATURES])],
        {},
    )


def _int_input() -> Any:
    return _model(
        [helper.make_node("Cast", ["x"], ["z"], to=TensorProto.FLOAT)],
        [helper.make_tensor_value_info("x", TensorProto.INT64, ["N", FEATURES])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", FEATURES])],
        {},
    )


def _zipmap() -> Any:
    model = classifier(out="p")
    model.graph.output.pop()
    model.graph.node.append(
        helper.make_node(
            "ZipMap", ["p"], ["output_probability"], domain="ai.onnx.ml", classlabels_int64s=[0, 1, 2]
        )
    )
    value = helper.make_tensor_type_proto(TensorProto.FLOAT, [])
    seq_type = helper.make_sequence_type_proto(helper.make_map_type_proto(TensorProto.INT64, value))
    seq = helper.make_value_info("output_probability", seq_type)
    model.graph.output.append(seq)
    model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 1))
    return model


@pytest.mark.parametrize(
    ("build", "classes", "reason"),
    [
        (lambda: classifier(batch=1), CLASSES, "dynamic batch dimension"),
        (lambda: classifier(batch=8), CLASSES, "dynamic batch dimension"),
        (_two_inputs, (), "2 inputs"),
        (_int_input, (), "tensor(int64)"),
        (classifier, (), "probabilities over 3 classes: set classes"),
        (classifier, ("a", "b"), "classes names 2 classes but the model outputs 3"),
        (regressor, ("a", "b"), "outputs values, not probabilities"),
        (_zipmap, (), "ZipMap"),
    ],
    ids=[
        "batch-1",
        "batch-8",
        "two-inputs",
        "int-input",
        "no-classes",
        "classes-count",
        "classes-on-values",
        "zipmap",
    ],
)
def test_onnx_models_the_gateway_cannot_serve_are_refused_with_the_reason(
    tmp_path: Path, build: Any, classes: tuple[str, ...], reason: str
) -> None:
    path = save(build(), tmp_path / "m.onnx")
    assert reason in refused(spec(path, ModelFormat.ONNX, classes=classes))


def _with_external_data(location: str) -> Any:
    model = classifier()
    weights = model.graph.initializer[0]
    weights.data_location = TensorProto.EXTERNAL
    weights.ClearField("raw_data")
    entry = weights.external_data.add()
    entry.key, entry.value = "location", location
    return model


def test_onnx_external_data_inside_the_folder_is_refused_not_read(tmp_path: Path) -> None:
    """The checked copy is all that is loaded: weights beside it are neither scanned, hashed nor signed."""
    model = classifier()
    onnx.save(model, tmp_path / "m.onnx", save_as_external_data=True, location="w.bin", size_threshold=0)
    assert (tmp_path / "w.bin").is_file()
    reason = refused(spec(tmp_path / "m.onnx", ModelFormat.ONNX, classes=CLASSES))
    assert "external files" in reason and "'W'" in reason


def test_onnx_external_data_outside_the_folder_is_refused_by_the_scan(tmp_path: Path) -> None:
    (tmp_path / "secret").write_bytes(b"\x00" * 4 * FEATURES * 3)
    path = save(_with_external_data("../secret"), tmp_path / "m.onnx")
    reason = refused(spec(path, ModelFormat.ONNX, classes=CLASSES))
    assert reason.startswith("model 'm': scan verdict unsafe") and "BAS-M201" in reason


def test_onnx_custom_operators_are_refused_no_native_library_is_ever_registered(tmp_path: Path) -> None:
    """The scan calls a custom domain a medium finding; the gateway registers no custom-op library, so
    ONNX Runtime cannot build the graph and the model is refused."""
    model = classifier()
    model.graph.node[2].domain = "evil.ops"
    model.opset_import.append(helper.make_opsetid("evil.ops", 1))
    reason = refused(spec(save(model, tmp_path / "m.onnx"), ModelFormat.ONNX, classes=CLASSES))
    assert "cannot load as onnx" in reason and "evil.ops" in reason


def test_a_truncated_onnx_file_is_refused(tmp_path: Path) -> None:
    data = save(classifier(), tmp_path / "whole.onnx").read_bytes()
    (tmp_path / "m.onnx").write_bytes(data[: len(data) // 2])
    assert "scan verdict" in refused(spec(tmp_path / "m.onnx", ModelFormat.ONNX, classes=CLASSES))


def test_a_joblib_file_declared_as_onnx_is_refused(tmp_path: Path) -> None:
    import joblib

    X, y = make_data()
    joblib.dump(LogisticRegression(max_iter=300).fit(X, y), tmp_path / "m.model")  # a safe pickle
    reason = refused(spec(tmp_path / "m.model", ModelFormat.ONNX, classes=CLASSES))
    assert "cannot load as onnx" in reason


def test_classes_and_threads_are_only_for_the_formats_that_use_them(tmp_path: Path) -> None:
    def config(**model: Any) -> None:
        doc = {"server": {"environment": "prod"}, "models": [{"name": "m", "environment": "prod", **model}]}
        parse_config(doc, base=tmp_path)

    config(path="m.onnx", format="onnx", classes=["a", "b"], threads=4)
    with pytest.raises(ConfigError, match="classes is for upstream and onnx"):
        config(path="m.joblib", format="sklearn-joblib", classes=["a", "b"])
    with pytest.raises(ConfigError, match="threads is for onnx"):
        config(path="m.skops", format="skops", threads=2)
    with pytest.raises(ConfigError, match="threads"):
        config(path="m.onnx", format="onnx", threads=0)


# -- ONNX through the gateway ------------------------------------------------------------------------------


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


def _onnx_setup(tmp_path: Path, **model: Any) -> Any:
    save(classifier(), tmp_path / "clf.onnx")
    entry = {"name": "clf", "environment": "prod", "path": "clf.onnx", "format": "onnx", **model}
    return make_setup(tmp_path, models=[entry])


@pytest.mark.anyio
async def test_an_onnx_model_is_served_over_http_with_output_hardening(tmp_path: Path) -> None:
    setup = _onnx_setup(tmp_path, classes=list(CLASSES), output={"mode": "top-k", "top_k": 2, "round": 3})
    app = build_app(setup.config)
    rows = RNG.normal(size=(3, FEATURES))
    async with client(app) as c:
        r = await c.post(
            "/v1/models/clf:predict", json={"instances": rows.tolist()}, headers=bearer(setup.keys["alice"])
        )
        meta = await c.get("/v1/models/clf", headers=bearer(setup.keys["bob"]))
    assert r.status_code == 200, r.text
    want = softmax(rows)
    for row, expect in zip(r.json()["predictions"], want, strict=True):
        top = np.argsort(-expect)[:2]
        assert [p["label"] for p in row] == [CLASSES[i] for i in top]
        assert [p["probability"] for p in row] == pytest.approx(
            [round(float(expect[i]), 3) for i in top], abs=1e-3
        )
    assert meta.status_code == 200 and meta.json()["platform"] == "onnx"
    assert meta.json()["classes"] == list(CLASSES)
    loaded = setup.events("model-loaded")
    assert loaded and loaded[0]["model"] == "clf" and len(loaded[0]["sha256"]) == 64
    await app.gw.close()


@pytest.mark.anyio
async def test_a_refused_onnx_model_is_audited_and_not_served(tmp_path: Path) -> None:
    setup = _onnx_setup(tmp_path)  # probabilities but no classes
    app = build_app(setup.config)
    async with client(app) as c:
        r = await c.post(
            "/v1/models/clf:predict",
            json={"instances": [[0.0] * FEATURES]},
            headers=bearer(setup.keys["alice"]),
        )
    assert r.status_code == 503 and r.json()["error"] == "model-refused"
    (event,) = setup.events("model-refused")
    assert "set classes" in event["reason"]
    assert "clf" not in app.gw.models
    await app.gw.close()


# -- skops -------------------------------------------------------------------------------------------------


def _dump(estimator: Any, path: Path) -> Path:
    sio.dump(estimator, path)
    return path


def _fitted(**attrs: Any) -> LogisticRegression:
    X, y = make_data()
    est = LogisticRegression(max_iter=500).fit(X, y)
    for key, value in attrs.items():
        setattr(est, key, value)
    return est


def test_a_skops_logistic_regression_is_served(tmp_path: Path) -> None:
    est = _fitted()
    served = load_model(spec(_dump(est, tmp_path / "m.skops"), ModelFormat.SKOPS))
    assert isinstance(served.impl, SklearnModel) and served.n_features == FEATURES
    x = RNG.normal(size=(12, FEATURES))
    got = served.predict(x)
    np.testing.assert_allclose(got.probabilities, est.predict_proba(x))
    assert got.outputs == est.predict(x).tolist() and served.metadata()["platform"] == "skops"


def test_a_skops_forest_is_served_its_tree_type_is_in_the_allowlist(tmp_path: Path) -> None:
    X, y = make_data()
    est = RandomForestClassifier(n_estimators=3, max_depth=3, random_state=0).fit(X, y)
    path = _dump(est, tmp_path / "m.skops")
    assert sio.get_untrusted_types(file=path) == ["sklearn.tree._tree.Tree"]
    served = load_model(spec(path, ModelFormat.SKOPS))
    np.testing.assert_allclose(served.predict(X[:5]).probabilities, est.predict_proba(X[:5]))


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (Bunch(a=1), "sklearn.utils._bunch.Bunch"),
        (__import__("functools").partial(np.exp), "functools.partial"),
    ],
    ids=["sklearn-outside-catalogue", "outside-sklearn-numpy"],
)
def test_a_skops_type_outside_the_allowlist_is_refused_and_named(
    tmp_path: Path, value: Any, named: str
) -> None:
    """Bastion's scanner passes these files: the gateway's own allowlist is what refuses them."""
    import bastion
    from bastion.core import Verdict

    path = _dump(_fitted(extra_=value), tmp_path / "m.skops")
    assert bastion.scan([path]).verdict is Verdict.SAFE
    reason = refused(spec(path, ModelFormat.SKOPS))
    assert "outside the gateway's allowlist" in reason and named in reason


def test_the_skops_allowlist_is_sklearn_and_numpy_types_the_catalogue_allows() -> None:
    assert skops_untrusted(["sklearn.tree._tree.Tree", "numpy.dtype"]) == []
    odd = [
        "sklearn.utils._bunch.Bunch",
        "scipy.sparse._csr.csr_matrix",
        "builtins.eval",
        "numpy.load",
        "os.system",
    ]
    assert skops_untrusted(odd) == odd


def test_a_skops_file_that_is_not_an_estimator_is_refused(tmp_path: Path) -> None:
    reason = refused(spec(_dump({"coef": np.ones(3)}, tmp_path / "m.skops"), ModelFormat.SKOPS))
    assert "not a scikit-learn estimator" in reason


def _rewrite(path: Path, edit: Any) -> None:
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members = edit(members)
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)


def test_a_skops_schema_tampered_to_call_code_is_refused_by_the_scan(tmp_path: Path) -> None:
    path = _dump(_fitted(), tmp_path / "m.skops")
    pwned = tmp_path / "pwned"

    def edit(members: dict[str, bytes]) -> dict[str, bytes]:
        schema = json.loads(members["schema.json"])
        schema["content"]["content"]["extra_"] = {
            "__class__": "system",
            "__module__": "os",
            "__loader__": "FunctionNode",
            "__id__": 999,
            "content": {"module_path": "os", "function": "system"},
        }
        members["schema.json"] = json.dumps(schema).encode()
        return members

    _rewrite(path, edit)
    reason = refused(spec(path, ModelFormat.SKOPS))
    assert "scan verdict unsafe" in reason and "os.system" in reason
    assert not pwned.exists()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [("truncate", "scan verdict error"), ("flip", "scan verdict error"), ("no-schema", "schema.json")],
)
def test_a_corrupted_skops_file_is_refused(tmp_path: Path, damage: str, reason: str) -> None:
    path = _dump(_fitted(), tmp_path / "m.skops")
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 3]))
    elif damage == "flip":  # one byte inside a stored array: the zip CRC no longer matches
        with zipfile.ZipFile(path) as z:
            info = next(i for i in z.infolist() if i.filename.endswith(".npy"))
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        data[start + info.compress_size // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        _rewrite(path, lambda m: {k: v for k, v in m.items() if k != "schema.json"})
    assert reason in refused(spec(path, ModelFormat.SKOPS))


def test_onnx_without_onnxruntime_is_refused_with_the_install_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save(classifier(), tmp_path / "m.onnx")
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # import onnxruntime fails
    reason = refused(spec(path, ModelFormat.ONNX, classes=CLASSES))
    assert "needs onnxruntime" in reason and "bastion-mlsecops[onnx-serving]" in reason


def test_an_onnx_model_answering_non_finite_values_is_an_error_not_an_answer(tmp_path: Path) -> None:
    from bastion.gateway.errors import HttpError

    model = regressor()
    model.graph.node[1].output[0] = "lin"
    model.graph.node.append(helper.make_node("Log", ["lin"], ["y1"]))  # log of a negative value: NaN
    served = load_model(spec(save(model, tmp_path / "m.onnx"), ModelFormat.ONNX))
    x = np.tile(-W_REG[:, 0].astype(np.float64), (2, 1)) * 100  # x @ w + b < 0
    with pytest.raises(HttpError) as info:
        served.predict(x)
    assert info.value.status == 500 and info.value.code == "model-error"


@pytest.mark.parametrize("fmt", [ModelFormat.ONNX, ModelFormat.SKOPS])
def test_the_new_formats_need_their_evidence_when_it_is_required(tmp_path: Path, fmt: ModelFormat) -> None:
    from bastion.gateway.config import Evidence

    if fmt is ModelFormat.ONNX:
        path, extra = save(classifier(), tmp_path / "m.onnx"), {"classes": CLASSES}
    else:
        path, extra = _dump(_fitted(), tmp_path / "m.skops"), {}
    evidence = Evidence(bundle=tmp_path / "missing.sigstore.json")
    reason = refused(spec(path, fmt, require_evidence=evidence, **extra))
    assert "evidence undecided (no-evidence)" in reason
