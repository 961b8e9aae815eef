"""Build (or check) the pickle allowlist catalogue from real models made with the real libraries.

    python scripts/build_catalogue.py --check    # exit 1 if a global seen in a real model is not allowlisted
    python scripts/build_catalogue.py --write    # regenerate src/bastion/scanners/catalogue/<framework>.json

It makes models (sklearn estimators of every kind that fits on a toy problem, pipelines, torch
state dicts and whole pickled modules, numpy arrays including object arrays, joblib files, Hugging
Face ``training_args.bin`` when transformers and accelerate are installed), lists
every global their pickles reference with the static emulator (nothing is unpickled), and adds the
classes the frameworks define for pickling (all sklearn estimators, all torch.nn modules, torch's
own weights_only allowlist). Hand-written argument semantics of higher-order callables are kept.
"""

from __future__ import annotations

import argparse
import io
import json
import pickle
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from bastion.scanners.interface import Limits  # noqa: E402
from bastion.scanners.pickle.catalogue import load_catalogue  # noqa: E402
from bastion.scanners.pickle.judge import Judge  # noqa: E402
from bastion.scanners.pickle.machine import Budget, Machine  # noqa: E402
from bastion.scanners.pickle.values import Global, Use  # noqa: E402

CATALOGUE_DIR = ROOT / "src" / "bastion" / "scanners" / "catalogue"
FRAMEWORKS = (
    "numpy", "torch", "sklearn", "joblib", "scipy", "transformers", "accelerate", "pandas", "pyarrow",
)  # fmt: skip
# Hugging Face training artefacts (training_args.bin sits beside most fine-tuned checkpoints): made
# and catalogued when transformers and accelerate are installed, left as they are otherwise.
HF = ("transformers", "accelerate")

# Higher-order callables: argument positions they call or instantiate (kept on regeneration).
ARG_USES: dict[tuple[str, str], dict[str, str]] = {
    ("numpy.core.multiarray", "_reconstruct"): {"0": "new"},
    ("numpy._core.multiarray", "_reconstruct"): {"0": "new"},
    ("torch._tensor", "_rebuild_from_type_v2"): {"0": "call", "1": "new"},
    ("torch._tensor", "_rebuild_from_type"): {"0": "call", "1": "new"},
    ("torch._utils", "_rebuild_wrapper_subclass"): {"0": "new"},
    ("numpy.random._pickle", "__bit_generator_ctor"): {"0": "call"},
    ("numpy.random._pickle", "__generator_ctor"): {"0": "call", "1": "call"},
    ("numpy.random._pickle", "__randomstate_ctor"): {"0": "call", "1": "call"},
    ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"): {"0": "new"},
    ("numpy.ma.core", "_mareconstruct"): {"0": "new", "1": "new"},
    ("sklearn.metrics._dist_metrics", "newObj"): {"0": "new"},
    ("sklearn.neighbors._kd_tree", "newObj"): {"0": "new"},
    ("sklearn.neighbors._ball_tree", "newObj"): {"0": "new"},
    # pandas rebuilds indexes and arrays with the class it is given: cls.__new__(cls, ...)
    ("pandas.core.indexes.base", "_new_Index"): {"0": "new"},
    ("pandas.core.indexes.datetimes", "_new_DatetimeIndex"): {"0": "new"},
    ("pandas.core.indexes.period", "_new_PeriodIndex"): {"0": "new"},
    ("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"): {"0": "new"},
    ("pandas._libs.interval", "__pyx_unpickle_IntervalMixin"): {"0": "new"},
}

# Names older releases pickle that the installed versions no longer write (numpy 1.x, sklearn trees).
EXTRA: tuple[tuple[str, str, str], ...] = (
    ("numpy.core.multiarray", "scalar", "call"),
    ("numpy.core.numeric", "_frombuffer", "call"),
    ("numpy", "ndarray", "new"),
    ("numpy.core.multiarray", "_reconstruct", "call"),
    ("numpy.ma.core", "MaskedArray", "new"),
    ("numpy.random.mtrand", "RandomState", "new"),
    ("numpy.random._mt19937", "MT19937", "call"),
    ("numpy.random._pcg64", "PCG64", "call"),
    ("numpy.random._pcg64", "PCG64DXSM", "call"),
    ("numpy.random._philox", "Philox", "call"),
    ("numpy.random._sfc64", "SFC64", "call"),
    ("joblib.numpy_pickle_compat", "NDArrayWrapper", "new"),
    ("joblib.numpy_pickle_compat", "ZNDArrayWrapper", "new"),
    ("sklearn.neighbors._ball_tree", "BallTree", "value"),
    # TorchScript archives (torch/jit/_pickle.py): identity functions kept for old archives
    ("torch.jit._pickle", "build_intlist", "call"),
    ("torch.jit._pickle", "build_tensorlist", "call"),
    ("torch.jit._pickle", "build_doublelist", "call"),
    ("torch.jit._pickle", "build_boollist", "call"),
    ("torch.jit._pickle", "build_tensor_from_id", "call"),
    ("torch.jit._pickle", "restore_type_tag", "call"),
    # pandas 2.x pickles name the defining modules (what pandas_objects pickled under pandas 2.2.3
    # in a separate venv names); pandas 3 writes the public aliases
    ("pandas._libs.interval", "Interval", "call"),
    ("pandas._libs.missing", "NA", "value"),
    ("pandas._libs.tslibs.nattype", "__nat_unpickle", "call"),
    ("pandas._libs.tslibs.period", "Period", "call"),
    ("pandas.core.arrays.arrow.array", "ArrowExtensionArray", "new"),
    ("pandas.core.arrays.boolean", "BooleanArray", "new"),
    ("pandas.core.arrays.boolean", "BooleanDtype", "new"),
    ("pandas.core.arrays.categorical", "Categorical", "new"),
    ("pandas.core.arrays.datetimes", "DatetimeArray", "new"),
    ("pandas.core.arrays.floating", "Float64Dtype", "new"),
    ("pandas.core.arrays.floating", "FloatingArray", "new"),
    ("pandas.core.arrays.integer", "Int64Dtype", "new"),
    ("pandas.core.arrays.integer", "IntegerArray", "new"),
    ("pandas.core.arrays.interval", "IntervalArray", "new"),
    ("pandas.core.arrays.period", "PeriodArray", "new"),
    ("pandas.core.arrays.sparse.array", "SparseArray", "new"),
    ("pandas.core.arrays.string_", "StringArray", "new"),
    ("pandas.core.arrays.string_", "StringDtype", "new"),
    ("pandas.core.arrays.string_arrow", "ArrowStringArray", "new"),
    ("pandas.core.arrays.timedeltas", "TimedeltaArray", "new"),
    ("pandas.core.dtypes.dtypes", "ArrowDtype", "new"),
    ("pandas.core.dtypes.dtypes", "CategoricalDtype", "new"),
    ("pandas.core.dtypes.dtypes", "DatetimeTZDtype", "new"),
    ("pandas.core.dtypes.dtypes", "IntervalDtype", "new"),
    ("pandas.core.dtypes.dtypes", "PeriodDtype", "call"),
    ("pandas.core.dtypes.dtypes", "SparseDtype", "new"),
    ("pandas.core.frame", "DataFrame", "new"),
    ("pandas.core.indexes.base", "Index", "new"),
    ("pandas.core.indexes.category", "CategoricalIndex", "new"),
    ("pandas.core.indexes.datetimes", "DatetimeIndex", "new"),
    ("pandas.core.indexes.multi", "MultiIndex", "new"),
    ("pandas.core.indexes.period", "PeriodIndex", "new"),
    ("pandas.core.indexes.range", "RangeIndex", "new"),
    ("pandas.core.series", "Series", "new"),
)

Blob = tuple[str, bytes]  # (label, pickle bytes)


def globals_of(data: bytes) -> list[tuple[str, str, Use]]:
    """Every (module, name, use) a pickle stream references, including concatenated pickles."""
    judge = Judge(load_catalogue())
    view = memoryview(data)
    pos = 0
    budget = Budget(50_000_000)
    while pos < len(view):
        try:
            pos = Machine(view, pos, judge, Limits(), budget).run()
        except Exception:
            if pos == 0:
                raise
            break
    return [(c.mapped_module, c.mapped_name, u) for c, u in judge.uses() if isinstance(c, Global)]


# -- model makers ---------------------------------------------------------------------------------
def sklearn_models(full: bool) -> Iterator[tuple[str, Any]]:
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import make_classification, make_regression
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeRegressor

    X, y = make_classification(n_samples=60, n_features=6, n_informative=3, random_state=0)
    Xr, yr = make_regression(n_samples=60, n_features=6, random_state=0)
    yield "logreg", LogisticRegression().fit(X, y)
    yield "rf", RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    yield "gb", GradientBoostingClassifier(n_estimators=3).fit(X, y)
    yield "hgb", HistGradientBoostingClassifier(max_iter=3).fit(X, y)
    yield "svc", SVC().fit(X, y)
    yield "knn", KNeighborsClassifier().fit(X, y)
    yield "tree", DecisionTreeRegressor().fit(Xr, yr)
    yield "ridge", Ridge().fit(Xr, yr)
    yield "pipeline", make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    texts = ["a cat", "a dog", "the cat sat", "dogs bark"] * 5
    yield "tfidf", make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(texts, [0, 1, 0, 1] * 5)
    cols = np.array([[0.5, "a"], [1.5, "b"], [2.5, "a"], [3.5, "c"]] * 5, dtype=object)
    ct = ColumnTransformer([("num", StandardScaler(), [0]), ("cat", OneHotEncoder(), [1])])
    yield "column_transformer", make_pipeline(ct, LogisticRegression()).fit(cols, [0, 1, 0, 1] * 5)
    # fitted searches are pickled whole: their splitters, scorers and scipy.stats distributions too
    from scipy import stats
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    yield "grid_search", GridSearchCV(LogisticRegression(), {"C": [0.1, 1.0]}, cv=2).fit(X, y)
    space = {"C": stats.loguniform(1e-3, 1e3), "tol": stats.uniform(1e-5, 1e-3)}
    search = RandomizedSearchCV(LogisticRegression(), space, n_iter=2, cv=2, scoring="roc_auc")
    yield "random_search", search.fit(X, y)
    if not full:
        return
    from sklearn.utils import all_estimators

    for name, cls in all_estimators():
        try:
            est = cls()
            yield f"sk:{name}", est.fit(X, y)
        except Exception:  # noqa: BLE001, S112 - estimators that need special inputs are skipped
            continue


class _Small:  # a TorchScript-compilable module (torch.jit.script needs its source in a file)
    @staticmethod
    def make() -> Any:
        from torch import nn

        class Small(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.lin = nn.Linear(4, 2)
                self.bn = nn.BatchNorm1d(2)

            def forward(self, x):
                return self.bn(self.lin(x))  # TorchScript reads unannotated arguments as tensors

        return Small().eval()


def _torchscript_blobs() -> Iterator[Blob]:
    """Every pickle member (data, constants, debug info) of scripted and traced TorchScript archives."""
    import torch

    model = _Small.make()
    for label, compiled in (
        ("script", torch.jit.script(model)),
        ("trace", torch.jit.trace(model, torch.randn(3, 4))),
    ):
        buf = io.BytesIO()
        torch.jit.save(compiled, buf)
        with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
            for info in zf.infolist():
                if info.filename.endswith(("pkl", "debug_pkl")):
                    yield f"torchscript-{label}:{info.filename}", zf.read(info)


def torch_blobs(full: bool) -> Iterator[Blob]:
    import torch
    from torch import nn
    from torch.utils.data import TensorDataset, random_split

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.bn = nn.BatchNorm2d(2)
            self.lstm = nn.LSTM(4, 4)
            self.emb = nn.Embedding(5, 4)
            self.head = nn.Sequential(nn.Linear(4, 2), nn.ReLU(), nn.Dropout(0.1), nn.LayerNorm(2))

    Net.__module__ = __name__
    Net.__qualname__ = Net.__name__ = "Net"
    sys.modules[__name__].Net = Net  # so pickle finds it like a class defined at top level
    model = Net()
    probs = torch.ones(3) / 3
    objs: dict[str, Any] = {
        "state_dict": model.state_dict(),
        "tensors": {
            "f": torch.zeros(3),
            "h": torch.zeros(2, dtype=torch.float16),
            "i": torch.arange(4),
            "b": torch.ones(2, dtype=torch.bool),
            "bf": torch.zeros(2, dtype=torch.bfloat16),
        },
        "checkpoint": {
            "epoch": 3,
            "model": model.state_dict(),
            "optimizer": torch.optim.SGD(model.parameters(), lr=0.1).state_dict(),
        },
        # what else training code saves: datasets and splits, distributions, torch.max's results
        "data": random_split(TensorDataset(torch.zeros(4, 2), torch.zeros(4)), [2, 2]),
        "distributions": [torch.distributions.Normal(0.0, 1.0), torch.distributions.Categorical(probs)],
        "return_types": [torch.max(torch.zeros(2, 2), 0), torch.sort(probs), torch.topk(probs, 1)],
        "encoder_layer": nn.TransformerEncoderLayer(8, 2, 16),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if full:
            objs["transformer"] = nn.Transformer(
                d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=8
            ).state_dict()
    yield from _torchscript_blobs()
    for legacy in (False, True):
        for label, obj in [*objs.items(), ("whole_module", model)]:
            buf = io.BytesIO()
            torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
            raw = buf.getvalue()
            if legacy:
                yield f"torch-legacy:{label}", raw
            else:
                with zipfile.ZipFile(io.BytesIO(raw)) as zf:
                    for info in zf.infolist():
                        if info.filename.endswith(".pkl"):
                            yield f"torch-zip:{label}:{info.filename}", zf.read(info)


def numpy_objects() -> Iterator[tuple[str, Any]]:
    import numpy as np

    yield "float", np.arange(6, dtype=np.float64).reshape(2, 3)
    yield "fortran", np.asfortranarray(np.ones((3, 2), dtype=np.float32))
    yield "ints", np.arange(5, dtype=np.int16)
    yield "bool", np.zeros(3, dtype=bool)
    yield "strings", np.array(["a", "bc"])
    yield "bytes", np.array([b"a", b"bc"])
    yield "objects", np.array(["x", 1, None, 2.5], dtype=object)
    yield "structured", np.zeros(2, dtype=[("a", "<f8"), ("b", "<i4", (2,))])
    yield "datetime", np.array(["2024-01-01"], dtype="datetime64[D]")
    yield "scalar", np.float64(1.5)
    yield "int_scalar", np.int64(7)
    yield "random_state", np.random.RandomState(0)
    yield "generator", np.random.default_rng(0)
    yield "masked", np.ma.masked_array([1.0, 2.0], mask=[False, True])


def scipy_objects() -> Iterator[tuple[str, Any]]:
    import numpy as np
    from scipy import sparse

    m = np.eye(3)
    kinds = "csr_matrix csc_matrix coo_matrix lil_matrix dok_matrix bsr_matrix dia_matrix"
    kinds += " csr_array csc_array coo_array"
    for kind in kinds.split():
        yield kind, getattr(sparse, kind)(m)
    from scipy import stats

    # continuous ones only: a discrete distribution pickles its bound methods as
    # builtins.getattr(<instance>, "_entropy"), the getattr gadget's shape, which stays critical
    yield "frozen_distributions", [stats.norm(0, 1), stats.loguniform(1e-3, 1.0), stats.gamma(2.0)]
    yield "kde", stats.gaussian_kde(np.arange(10.0))


def pandas_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pandas") is not None


def pandas_objects() -> Iterator[tuple[str, Any]]:
    """Frames, series, indexes and scalars of every dtype family (pyarrow-backed ones included):
    reference data, feature statistics and preprocessed sets are pickled beside models.

    Not times in an IANA zone: a ``zoneinfo.ZoneInfo`` pickles (in every protocol) as
    ``builtins.getattr(ZoneInfo, "_unpickle")``, and getattr stays denied (a constant attribute of
    an imported class is not told apart from the getattr gadgets yet)."""
    import numpy as np
    import pandas as pd

    n = 4
    plain = {"f": np.arange(n, dtype=float), "i": np.arange(n), "s": list("abcd"), "b": [True, False] * 2}
    yield "frame", pd.DataFrame({**plain, "o": pd.Series(["a", 1, None, 2.5], dtype=object)})
    columns: dict[str, Any] = {
        "cat": pd.Categorical(["u", "v", "u", "w"]),
        "Int64": pd.array([1, None, 3, 4], dtype="Int64"),
        "boolean": pd.array([True, None, False, True], dtype="boolean"),
        "Float64": pd.array([1.5, None, 2, 3], dtype="Float64"),
        "timedelta": pd.to_timedelta(np.arange(n), unit="s"),
        "utc": pd.date_range("2026-01-01", periods=n, tz="UTC"),
        "period": pd.period_range("2026-01", periods=n, freq="M"),
        "interval": pd.interval_range(0, n),
        "sparse": pd.arrays.SparseArray([0, 0, 1, 0]),
        "string": pd.array(["a", "b", None, "d"], dtype="string[python]"),
    }
    try:
        import pyarrow  # noqa: F401

        columns["arrow_string"] = pd.array(["a", "b", None, "d"], dtype="string[pyarrow]")
        columns["arrow_int"] = pd.array([1, 2, None, 4], dtype="int64[pyarrow]")
        columns["arrow_double"] = pd.array([1.5, 2.5, None, 4], dtype="double[pyarrow]")
    except ImportError:
        pass
    yield "dtypes", pd.DataFrame(columns)
    yield "series", pd.Series([1.0, 2.0, 3.0], index=["a", "b", "c"], name="x")
    yield "time_index", pd.Series(range(n), index=pd.date_range("2026-01-01", periods=n))
    yield "period_index", pd.Series(range(n), index=pd.period_range("2026-01", periods=n, freq="M"))
    multi = pd.MultiIndex.from_product([["a", "b"], [1, 2]], names=["k", "n"])
    yield "multi_index", pd.DataFrame({"v": range(n)}, index=multi)
    yield "describe", pd.DataFrame({"a": np.arange(10.0)}).describe()
    yield "scalars", [pd.Timestamp("2026-01-01", tz="UTC"), pd.Timedelta(5, unit="s"), pd.NA, pd.NaT]
    yield "ranges", [pd.Period("2026-01", freq="M"), pd.Interval(0, 1)]
    yield "indexes", [pd.RangeIndex(5), pd.CategoricalIndex(["a", "b"]), pd.Index([1.5, 2.5])]


def pickled(objs: Iterator[tuple[str, Any]], protocols: tuple[int, ...] = (2, 4, 5)) -> Iterator[Blob]:
    for label, obj in objs:
        for p in protocols:
            yield f"{label}:p{p}", pickle.dumps(obj, protocol=p)


def joblib_dumped(objs: Iterator[tuple[str, Any]]) -> Iterator[Blob]:
    import tempfile

    import joblib

    with tempfile.TemporaryDirectory() as tmp:
        for label, obj in objs:
            path = Path(tmp) / "m.joblib"
            joblib.dump(obj, path)
            yield f"joblib:{label}", path.read_bytes()


def hf_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in HF)


def hf_blobs() -> Iterator[Blob]:
    """``training_args.bin`` as the Trainer writes it (``torch.save(TrainingArguments)``), varied."""
    import tempfile

    import torch
    from transformers import Seq2SeqTrainingArguments, TrainingArguments

    with tempfile.TemporaryDirectory() as out:
        strategies = {
            "eval_strategy": "steps", "save_strategy": "epoch", "logging_strategy": "no",
            "lr_scheduler_type": "cosine", "optim": "adafactor", "hub_strategy": "checkpoint",
        }  # fmt: skip
        variants: list[tuple[str, Any]] = [
            ("default", TrainingArguments(output_dir=out, report_to="none")),
            ("strategies", TrainingArguments(output_dir=out, report_to="none", **strategies)),
            ("seq2seq", Seq2SeqTrainingArguments(out, report_to="none", predict_with_generate=True)),
        ]
        for label, obj in variants:
            buf = io.BytesIO()
            torch.save(obj, buf)
            with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
                for info in zf.infolist():
                    if info.filename.endswith(".pkl"):
                        yield f"hf:{label}:{info.filename}", zf.read(info)


def hf_introspected() -> Iterator[tuple[str, str, str]]:
    """The enums (called with their value on load) and argument dataclasses (instantiated) of the
    Trainer's and accelerate's configuration modules."""
    import dataclasses
    import enum
    import importlib

    import accelerate.state

    for module_name in (
        "transformers.trainer_utils",
        "transformers.training_args",
        "transformers.training_args_seq2seq",
        "transformers.trainer_pt_utils",
        "accelerate.utils.dataclasses",
    ):
        module = importlib.import_module(module_name)
        for obj in vars(module).values():
            if not isinstance(obj, type) or obj.__module__ != module_name:
                continue
            if issubclass(obj, enum.Enum):
                yield obj.__module__, obj.__qualname__, "call"
            elif dataclasses.is_dataclass(obj):
                yield obj.__module__, obj.__qualname__, "new"
    for cls in (accelerate.state.PartialState, accelerate.state.AcceleratorState):
        yield cls.__module__, cls.__qualname__, "new"


def all_blobs(full: bool) -> Iterator[Blob]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = list(sklearn_models(full))
    yield from pickled(iter(models), (2, 4, 5) if not full else (4,))
    yield from joblib_dumped(iter(models))
    yield from pickled(numpy_objects(), (0, 2, 4, 5))
    yield from joblib_dumped(numpy_objects())
    yield from pickled(scipy_objects())
    yield from torch_blobs(full)
    if hf_available():
        yield from hf_blobs()
    if pandas_available():
        yield from pickled(pandas_objects())
        yield from joblib_dumped(pandas_objects())


# -- catalogue ------------------------------------------------------------------------------------
def framework_of(module: str) -> str:
    top = module.split(".")[0]
    return top if top in FRAMEWORKS else "stdlib"


def introspected() -> Iterator[tuple[str, str, str]]:
    """Classes the frameworks define for pickling, beyond those seen in the sample models."""
    import torch
    import torch._weights_only_unpickler as wo
    from sklearn.utils import all_estimators

    for _, cls in all_estimators():
        yield cls.__module__, cls.__qualname__, "new"
    import sklearn.metrics._scorer
    import sklearn.model_selection._split
    from scipy import stats

    for module in (sklearn.model_selection._split, sklearn.metrics._scorer):  # what searches keep
        for obj in vars(module).values():
            if isinstance(obj, type) and obj.__module__ == module.__name__ and not issubclass(obj, Exception):
                yield obj.__module__, obj.__qualname__, "new"
    import sklearn.metrics

    for name in sklearn.metrics.__all__:  # a scorer keeps its metric function (referenced, not called)
        obj = getattr(sklearn.metrics, name)
        if callable(obj) and not isinstance(obj, type):
            yield obj.__module__, obj.__qualname__, "value"
    for obj in vars(stats).values():  # the distribution objects and their frozen forms
        if isinstance(obj, stats.rv_continuous | stats.rv_discrete):
            yield type(obj).__module__, type(obj).__qualname__, "new"
    for cls in (stats.gaussian_kde, type(stats.norm()), type(stats.poisson(1))):
        yield cls.__module__, cls.__qualname__, "new"
    import torch.distributions
    import torch.nn.functional
    import torch.return_types
    import torch.utils.data

    made_for_pickling = (  # (module tree, base class, use): every class of the tree that is one
        ("torch.nn.modules", torch.nn.Module, "new"),  # NonDynamicallyQuantizableLinear is not exported
        ("torch.utils.data.dataset", torch.utils.data.Dataset, "new"),  # not the datapipes: they run
        ("torch.utils.data.sampler", torch.utils.data.Sampler, "new"),  # hooks when (un)pickled
        ("torch.distributions", torch.distributions.Distribution, "new"),
    )
    for tree, base, use in made_for_pickling:
        for module_name, module in list(sys.modules.items()):
            if module is None or not (module_name == tree or module_name.startswith(tree + ".")):
                continue
            for obj in vars(module).values():
                if isinstance(obj, type) and issubclass(obj, base) and obj.__module__ == module_name:
                    yield obj.__module__, obj.__qualname__, use
    for name in dir(torch.return_types):  # torch.max(...) and friends: named tuples rebuilt by a call
        obj = getattr(torch.return_types, name)
        if isinstance(obj, type) and issubclass(obj, tuple):
            yield obj.__module__, obj.__qualname__, "call"
    for name, obj in vars(torch.nn.functional).items():  # activations modules keep as attributes
        public_function = callable(obj) and not isinstance(obj, type) and not name.startswith("_")
        if public_function and getattr(obj, "__module__", None) == "torch.nn.functional":
            yield "torch.nn.functional", name, "value"
    import numpy as np

    for name in dir(np):
        if isinstance(getattr(np, name), np.ufunc):
            yield "numpy", name, "value"  # ufuncs are pickled by name (FunctionTransformer(func=np.log1p))
    for qual in wo._get_allowed_globals():
        module, _, name = qual.rpartition(".")
        if framework_of(module) == "torch":
            yield module, name, "call"
    if hf_available():
        yield from hf_introspected()


def observed(
    full: bool, on_blob: Callable[[str, list[tuple[str, str, Use]]], None] | None = None
) -> dict[tuple[str, str], Use]:
    seen: dict[tuple[str, str], Use] = {}
    for label, data in all_blobs(full):
        found = globals_of(data)
        if on_blob is not None:
            on_blob(label, found)
        for module, name, use in found:
            if module == "__main__":
                continue
            seen[(module, name)] = max(seen.get((module, name), Use.VALUE), use)
    return seen


def write(seen: dict[tuple[str, str], Use], versions: dict[str, str]) -> None:
    by_fw: dict[str, dict[tuple[str, str], str]] = {}
    names = {Use.VALUE: "value", Use.NEW: "new", Use.CALL: "call"}
    for (module, name), use in seen.items():
        by_fw.setdefault(framework_of(module), {})[(module, name)] = names[use]
    for module, name, use in introspected():
        fw = framework_of(module)
        old = by_fw.setdefault(fw, {}).get((module, name))
        by_fw[fw][(module, name)] = use if old is None or Use.parse(use) > Use.parse(old) else old
    for module, name, use in EXTRA:
        old = by_fw.setdefault(framework_of(module), {}).get((module, name))
        by_fw[framework_of(module)][(module, name)] = (
            use if old is None or Use.parse(use) > Use.parse(old) else old
        )
    # __torch__ classes are resolved by the TorchScript loader from the archive's compiled code,
    # never imported as Python: instantiation only.
    prefix_entries = {"torch": [{"module_prefix": "__torch__", "use": "new"}]}
    for (module, name), _ in ARG_USES.items():
        by_fw.setdefault(framework_of(module), {}).setdefault((module, name), "call")
    for fw, entries in sorted(by_fw.items()):
        if fw == "stdlib" or fw not in versions:
            continue  # stdlib is hand-maintained; a framework not installed keeps its file
        doc = {
            "schema_version": 1,
            "kind": "allowlist",
            "framework": fw,
            "version": versions.get(fw, "unknown"),
            "generated_by": "scripts/build_catalogue.py",
            "entries": [
                {
                    "module": m,
                    "name": n,
                    "use": u,
                    **({"args": ARG_USES[(m, n)]} if ARG_USES.get((m, n)) else {}),
                }
                for (m, n), u in sorted(entries.items())
                if not m.startswith("__torch__")
            ]
            + prefix_entries.get(fw, []),
        }
        (CATALOGUE_DIR / f"{fw}.json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        print(f"{fw}: {len(entries)} entries")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--quick", action="store_true", help="a small model set (what the tests use)")
    args = parser.parse_args()
    seen = observed(full=not args.quick)
    if args.write:
        import joblib
        import numpy
        import scipy
        import sklearn
        import torch

        versions = {"numpy": numpy.__version__, "torch": torch.__version__, "sklearn": sklearn.__version__,
                    "joblib": joblib.__version__, "scipy": scipy.__version__}  # fmt: skip
        if hf_available():
            import accelerate
            import transformers

            versions |= {"transformers": transformers.__version__, "accelerate": accelerate.__version__}
        if pandas_available():
            import pandas

            versions["pandas"] = pandas.__version__
            try:
                import pyarrow

                versions["pyarrow"] = pyarrow.__version__
            except ImportError:
                pass
        write(seen, versions)
    catalogue = load_catalogue()
    missing = []
    for (module, name), use in sorted(seen.items()):
        entry = catalogue.entry(module, name)
        if entry is None or entry.use < use or catalogue.denied(module, name):
            missing.append(f"{module}.{name} ({use.name.lower()})")
    for line in missing:
        print("not allowlisted:", line)
    print(f"{len(seen)} globals seen, {len(missing)} not allowlisted")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
