"""Keras scanner: hand-built Keras 3 config.json and Keras 2 style HDF5 files (made with h5py)."""

from __future__ import annotations

import base64
import codecs
import contextlib
import json
import marshal
from pathlib import Path
from typing import Any

import pytest

from bastion.core import Severity
from bastion.scanners.interface import FormatError, LimitExceeded, Limits, Location, ScanContext
from bastion.scanners.keras import looks_like_hdf5, scan_hdf5, scan_keras_config
from tests.conftest import mutations as _mutations

LOC = Location("model.keras", "config.json")


def evil_code_b64() -> str:
    """base64(marshal(code)) exactly as keras' func_dump writes it; the code is never executed."""
    code = compile("lambda x: __import__('os').system('echo pwned')", "<evil>", "eval").co_consts[0]
    return codecs.encode(marshal.dumps(code), "base64").decode("ascii")


def layer(
    class_name: str, config: dict[str, Any], module: str = "keras.layers", registered: Any = None
) -> dict[str, Any]:
    return {"module": module, "class_name": class_name, "config": config, "registered_name": registered}


def keras3_model(*extra: dict[str, Any]) -> dict[str, Any]:
    init = {
        "module": "keras.initializers",
        "class_name": "GlorotUniform",
        "config": {"seed": None},
        "registered_name": None,
    }
    layers = [
        layer("InputLayer", {"batch_shape": [None, 28, 28, 1], "dtype": "float32", "name": "input_layer"}),
        layer(
            "Conv2D",
            {
                "name": "conv2d",
                "filters": 8,
                "kernel_size": [3, 3],
                "activation": "relu",
                "kernel_initializer": init,
                "dtype": {
                    "module": "keras",
                    "class_name": "DTypePolicy",
                    "config": {"name": "float32"},
                    "registered_name": None,
                },
            },
        ),
        layer("Flatten", {"name": "flatten"}),
        layer("Dense", {"name": "dense", "units": 10, "activation": "softmax", "kernel_initializer": init}),
        *extra,
    ]
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "sequential", "layers": layers},
        "registered_name": None,
        "build_config": {"input_shape": [None, 28, 28, 1]},
        "compile_config": {
            "optimizer": {
                "module": "keras.optimizers",
                "class_name": "Adam",
                "config": {"learning_rate": 0.001},
                "registered_name": None,
            },
            "loss": "sparse_categorical_crossentropy",
            "metrics": ["accuracy"],
        },
    }


def keras2_model(*extra: dict[str, Any]) -> dict[str, Any]:
    layers = [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 4], "name": "input_1"}},
        {
            "class_name": "Dense",
            "config": {
                "name": "dense",
                "units": 2,
                "activation": "relu",
                "kernel_initializer": {"class_name": "GlorotUniform", "config": {}},
            },
        },
        *extra,
    ]
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}


def scan_config(config: Any) -> ScanContext:
    ctx = ScanContext()
    scan_keras_config(memoryview(json.dumps(config).encode()), LOC, ctx, 0)
    return ctx


def rules(ctx: ScanContext) -> list[str]:
    return sorted(f.rule_id for f in ctx.findings)


def test_benign_keras3_config() -> None:
    ctx = scan_config(keras3_model())
    assert ctx.findings == []
    assert [a.format for a in ctx.scanned] == ["keras-config"]


def test_keras3_lambda_bytecode_is_critical() -> None:
    fn = {"class_name": "__lambda__", "config": {"value": [evil_code_b64(), None, None]}}
    ctx = scan_config(keras3_model(layer("Lambda", {"name": "evil", "function": fn})))
    assert rules(ctx) == ["BAS-M240"]
    finding = ctx.findings[0]
    assert finding.severity is Severity.CRITICAL and "system" in finding.message and "evil" in finding.message


def test_legacy_lambda_list_in_keras3_archive() -> None:
    cfg = {
        "name": "lam",
        "function": [evil_code_b64(), None, None],
        "function_type": "lambda",
        "module": "__main__",
    }
    assert rules(scan_config(keras3_model(layer("Lambda", cfg)))) == ["BAS-M240"]


def test_lambda_by_function_reference() -> None:
    cfg = {"name": "lam", "function": "my_fn", "function_type": "function", "module": "helpers"}
    assert rules(scan_config(keras3_model(layer("Lambda", cfg)))) == ["BAS-M241"]


def test_lambda_pointing_at_os_system() -> None:
    fn = {"module": "os", "class_name": "function", "config": "system", "registered_name": "function"}
    ctx = scan_config(keras3_model(layer("Lambda", {"name": "lam", "function": fn})))
    assert rules(ctx) == ["BAS-M241", "BAS-M243"]
    assert any(f.callable == "os.system" for f in ctx.findings)


def test_custom_objects_are_high() -> None:
    ctx = scan_config(
        keras3_model(layer("MyLayer", {"name": "mine"}, module="my_pkg.layers", registered="MyPkg>MyLayer"))
    )
    assert rules(ctx) == ["BAS-M242"]
    assert ctx.findings[0].severity is Severity.HIGH and ctx.findings[0].callable == "my_pkg.layers.MyLayer"


def test_custom_registered_name_without_module() -> None:
    assert rules(
        scan_config(keras3_model({"class_name": "X", "config": {}, "registered_name": "Evil>X"}))
    ) == ["BAS-M242"]


def test_safe_mode_bypass_through_keras_function_is_critical() -> None:
    """CVE-2025-1550 class: a config entry that calls keras.config.enable_unsafe_deserialization."""
    bypass = {
        "module": "keras.config",
        "class_name": "enable_unsafe_deserialization",
        "config": {},
        "registered_name": None,
    }
    get_file = {
        "module": "keras.utils",
        "class_name": "get_file",
        "config": {"origin": "http://x"},
        "registered_name": None,
    }
    ctx = scan_config(keras3_model(bypass, get_file))
    assert rules(ctx) == ["BAS-M243", "BAS-M243"]


@pytest.mark.parametrize(
    ("function", "flagged"),
    [
        ("math.add", False),
        ("__operators__.add", False),
        ("compat.v1.nn.relu", False),
        ("tf.reshape", False),
        ("numpy_function", True),
        ("io.write_file", True),
        ("compat.v1.py_func", True),
        ("os.system('x')", True),
    ],
)
def test_tfoplambda(function: str, flagged: bool) -> None:
    op = {"class_name": "TFOpLambda", "config": {"name": "op", "function": function}}
    assert rules(scan_config(keras2_model(op))) == (["BAS-M244"] if flagged else [])


@pytest.mark.parametrize(
    "blob", [b"not json", b"[1, 2]", b"\xff\xfe", b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"]
)
def test_malformed_configs(blob: bytes) -> None:
    with pytest.raises(FormatError):
        scan_keras_config(memoryview(blob), LOC, ScanContext(), 0)


def test_config_over_limit() -> None:
    with pytest.raises(LimitExceeded):
        scan_keras_config(
            memoryview(b"{}" + b" " * 100), LOC, ScanContext(limits=Limits(max_header_bytes=50)), 0
        )


# --- HDF5 -------------------------------------------------------------------------------------------


def write_h5(path: Path, attrs: dict[str, str], userblock: int = 0) -> bytes:
    h5py = pytest.importorskip("h5py")
    np = pytest.importorskip("numpy")
    kwargs = {"userblock_size": userblock} if userblock else {}
    with h5py.File(path, "w", **kwargs) as f:
        for key, value in attrs.items():
            f.attrs[key] = value.encode("utf8")  # as Keras 2's save_model_to_hdf5 does
        weights = f.create_group("model_weights").create_group("dense")
        weights.create_dataset("kernel:0", data=np.zeros((4, 2), dtype="float32"))
    return path.read_bytes()


def scan_h5(blob: bytes) -> ScanContext:
    ctx = ScanContext()
    scan_hdf5(memoryview(blob), Location("model.h5"), ctx, 0)
    return ctx


def test_weights_only_hdf5(tmp_path: Path) -> None:
    blob = write_h5(tmp_path / "w.h5", {})
    assert looks_like_hdf5(memoryview(blob))
    ctx = scan_h5(blob)
    assert ctx.findings == [] and [a.format for a in ctx.scanned] == ["hdf5"]


def test_benign_keras2_h5(tmp_path: Path) -> None:
    training = {
        "loss": "mse",
        "metrics": ["mae"],
        "optimizer_config": {"class_name": "Adam", "config": {"lr": 0.01}},
    }
    blob = write_h5(
        tmp_path / "m.h5",
        {"model_config": json.dumps(keras2_model()), "training_config": json.dumps(training)},
    )
    assert scan_h5(blob).findings == []


def test_keras2_lambda_h5_is_critical(tmp_path: Path) -> None:
    lam = {
        "class_name": "Lambda",
        "config": {
            "name": "lambda",
            "function": [evil_code_b64(), None, None],
            "function_type": "lambda",
            "module": "__main__",
            "output_shape": None,
        },
    }
    blob = write_h5(tmp_path / "m.h5", {"model_config": json.dumps(keras2_model(lam))})
    ctx = scan_h5(blob)
    assert rules(ctx) == ["BAS-M240"]
    assert ctx.findings[0].offset is not None and ctx.findings[0].offset > 0


def test_lambda_h5_with_userblock(tmp_path: Path) -> None:
    lam = {
        "class_name": "Lambda",
        "config": {"name": "l", "function": [evil_code_b64(), None, None], "function_type": "lambda"},
    }
    blob = write_h5(tmp_path / "u.h5", {"model_config": json.dumps(keras2_model(lam))}, userblock=512)
    assert blob[:8] != b"\x89HDF\r\n\x1a\n"
    assert rules(scan_h5(blob)) == ["BAS-M240"]


def test_not_hdf5() -> None:
    with pytest.raises(FormatError):
        scan_h5(b"\0" * 4096)


def test_lambda_base64_that_is_not_bytecode_is_still_critical() -> None:
    cfg = {
        "name": "l",
        "function": [base64.b64encode(b"junk").decode(), None, None],
        "function_type": "lambda",
    }
    assert rules(scan_config(keras2_model({"class_name": "Lambda", "config": cfg}))) == ["BAS-M240"]


def test_random_corruption_only_raises_format_errors(tmp_path: Path) -> None:
    lam = {"class_name": "Lambda", "config": {"name": "l", "function": [evil_code_b64(), None, None]}}
    seed = write_h5(tmp_path / "m.h5", {"model_config": json.dumps(keras2_model(lam))})
    config = json.dumps(keras3_model()).encode()
    for blob in _mutations(seed, 150) + _mutations(config, 150):
        for scanner in (scan_hdf5, scan_keras_config):
            with contextlib.suppress(FormatError):
                scanner(memoryview(blob), LOC, ScanContext(), 0)
