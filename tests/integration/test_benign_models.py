"""Real models made with the real libraries scan clean: no finding at severity >= high, no problem.

Raw pickles go through ``scan_pickle`` directly; zip and compressed containers through the engine
(``bastion.scan``). The catalogue generator's model set is reused, and every global those models
reference must be allowlisted.
"""

from __future__ import annotations

import importlib.util
import io
import pickle
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from bastion.core import Severity
from bastion.scanners.interface import Location, ScanContext
from bastion.scanners.pickle import load_catalogue, scan_pickle

np = pytest.importorskip("numpy")
sklearn = pytest.importorskip("sklearn")
joblib = pytest.importorskip("joblib")
torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]


def _builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bastion_build_catalogue", ROOT / "scripts" / "build_catalogue.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


BUILD = _builder()


def scan_raw(data: bytes, label: str = "model.pkl") -> ScanContext:
    ctx = ScanContext()
    scan_pickle(memoryview(data), Location(label), ctx, 0)
    return ctx


def assert_clean_ctx(ctx: ScanContext) -> None:
    blocking = [f for f in ctx.findings if f.severity >= Severity.HIGH]
    assert not blocking, [(f.rule_id, f.callable, f.message) for f in blocking]
    assert not ctx.problems, ctx.problems


def assert_clean_report(path: Path) -> None:
    import bastion

    report = bastion.scan([path])
    blocking = [f for f in report.findings if f.severity >= Severity.HIGH]
    assert not blocking, [(f.rule_id, f.callable, f.member, f.message) for f in blocking]
    assert not report.problems, report.problems
    assert report.scanned


@pytest.fixture(scope="module")
def sklearn_models() -> list[tuple[str, Any]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(BUILD.sklearn_models(full=False))


def test_every_global_in_real_models_is_allowlisted() -> None:
    catalogue = load_catalogue()
    missing: list[str] = []

    def check(label: str, found: list[tuple[str, str, Any]]) -> None:
        for module, name, use in found:
            if module == BUILD.__name__ or module == "__main__":
                continue  # the test's own nn.Module: an unverified class by design
            entry = catalogue.entry(module, name)
            if entry is None or entry.use < use or catalogue.denied(module, name):
                missing.append(f"{label}: {module}.{name} ({use.name})")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        BUILD.observed(full=False, on_blob=check)
    assert not missing, missing


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_sklearn_pickles_are_clean(sklearn_models: list[tuple[str, Any]], protocol: int) -> None:
    for label, model in sklearn_models:
        ctx = scan_raw(pickle.dumps(model, protocol=protocol), label)
        assert_clean_ctx(ctx)
        assert not ctx.findings, (label, ctx.findings)


def test_sklearn_joblib_plain_is_clean(sklearn_models: list[tuple[str, Any]], tmp_path: Path) -> None:
    for label, model in sklearn_models:
        for protocol in (2, 3, 4, 5):
            path = tmp_path / f"{label}.joblib"
            joblib.dump(model, path, protocol=protocol)
            ctx = scan_raw(path.read_bytes(), label)
            assert_clean_ctx(ctx)
            assert not ctx.findings, (label, ctx.findings)


@pytest.mark.parametrize("compress", ["zlib", "gzip", "bz2", "lzma", "xz"])
def test_sklearn_joblib_compressed_is_clean(
    sklearn_models: list[tuple[str, Any]], tmp_path: Path, compress: str
) -> None:
    label, model = sklearn_models[1]  # random forest: trees hold numpy arrays
    path = tmp_path / f"{label}.joblib.{compress}"
    joblib.dump(model, path, compress=(compress, 3))
    assert_clean_report(path)


def test_numpy_objects_are_clean(tmp_path: Path) -> None:
    for label, obj in BUILD.numpy_objects():
        for protocol in (0, 2, 4, 5):
            ctx = scan_raw(pickle.dumps(obj, protocol=protocol), label)
            assert_clean_ctx(ctx)
        path = tmp_path / "a.joblib"
        joblib.dump(obj, path)
        assert_clean_ctx(scan_raw(path.read_bytes(), label))


def test_numpy_object_npy_of_benign_strings_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "labels.npy"
    np.save(path, np.array(["cat", "dog", None, 3], dtype=object), allow_pickle=True)
    assert_clean_report(path)
    plain = tmp_path / "weights.npy"
    np.save(plain, np.arange(12, dtype=np.float32).reshape(3, 4))
    assert_clean_report(plain)


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3)
        self.fc = torch.nn.Linear(4, 2)
        self.norm = torch.nn.BatchNorm1d(2)


def _torch_save(obj: object, path: Path, legacy: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(obj, path, _use_new_zipfile_serialization=not legacy)


@pytest.mark.parametrize("legacy", [False, True])
def test_torch_state_dict_is_clean(tmp_path: Path, legacy: bool) -> None:
    path = tmp_path / "weights.pt"
    _torch_save(Net().state_dict(), path, legacy)
    if legacy:
        ctx = scan_raw(path.read_bytes())
        assert_clean_ctx(ctx)
        assert not ctx.findings, ctx.findings
    assert_clean_report(path)


@pytest.mark.parametrize("legacy", [False, True])
def test_whole_torch_module_is_only_an_unverified_class(tmp_path: Path, legacy: bool) -> None:
    path = tmp_path / "model.pt"
    _torch_save(Net(), path, legacy)
    import bastion

    report = bastion.scan([path])
    assert not report.problems, report.problems
    assert not [f for f in report.findings if f.severity >= Severity.HIGH], report.findings
    low = [f for f in report.findings if f.rule_id == "BAS-M103"]
    assert [f.callable for f in low] == [f"{__name__}.Net"]


def test_torch_legacy_raw_with_many_tensors_is_clean() -> None:
    buf = io.BytesIO()
    tensors = {f"t{i}": torch.full((64 + i,), float(i)) for i in range(50)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(tensors, buf, _use_new_zipfile_serialization=False)
    ctx = scan_raw(buf.getvalue())
    assert_clean_ctx(ctx)
    assert not ctx.findings


@pytest.mark.parametrize("legacy", [False, True])
def test_training_checkpoint_with_stdlib_objects_is_clean(tmp_path: Path, legacy: bool) -> None:
    """What training scripts save beside the weights: the optimizer and scheduler states, the
    argparse arguments (fairseq-style), paths, times, counters, NumPy scalars and RNG states."""
    import argparse
    import collections
    import datetime
    import pathlib

    net = Net()
    opt = torch.optim.Adam(net.parameters())
    net.fc(torch.randn(3, 4)).sum().backward()
    opt.step()
    checkpoint = {
        "args": argparse.Namespace(lr=1e-3, arch="net", seed=1),
        "model": net.state_dict(),
        "optimizer": opt.state_dict(),
        "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 10).state_dict(),
        "best_metric": np.float64(0.91),
        "numpy_rng": np.random.get_state(),
        "torch_rng": torch.get_rng_state(),
        "data_dir": pathlib.Path("/data/train"),
        "export_dir": pathlib.PurePosixPath("/exports"),
        "saved_at": datetime.datetime(2026, 11, 29, 5, 0),
        "history": collections.defaultdict(list, {"loss": [0.5, 0.4]}),
        "counts": collections.Counter({"a": 1}),
    }
    path = tmp_path / "checkpoint.pt"
    _torch_save(checkpoint, path, legacy)
    import bastion

    report = bastion.scan([path])
    assert not report.problems, report.problems
    assert not report.findings, report.findings


def test_pandas_frames_of_every_dtype_family_are_clean(tmp_path: Path) -> None:
    """Reference data and feature statistics pickled beside models (``DataFrame.to_pickle``, pickle
    protocols 2 to 5): frames, series, indexes and scalars of every dtype family."""
    pd = pytest.importorskip("pandas")
    for label, obj in BUILD.pandas_objects():
        for protocol in (2, 4, 5):
            ctx = scan_raw(pickle.dumps(obj, protocol=protocol), label)
            assert_clean_ctx(ctx)
            assert not ctx.findings, (label, protocol, ctx.findings)
    frame = dict(BUILD.pandas_objects())["dtypes"]
    assert isinstance(frame, pd.DataFrame)
    frame.to_pickle(tmp_path / "reference.pkl")
    assert_clean_report(tmp_path / "reference.pkl")


def test_hugging_face_training_args_are_clean(tmp_path: Path) -> None:
    """``training_args.bin`` (``torch.save`` of the Trainer's arguments: enums and dataclasses)."""
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        blobs = list(BUILD.hf_blobs())
    assert len(blobs) >= 3
    for label, data in blobs:
        ctx = scan_raw(data, label)
        assert_clean_ctx(ctx)
        assert not ctx.findings, (label, ctx.findings)
