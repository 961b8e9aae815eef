"""A Hugging Face-style model folder made by the real libraries scans clean, whatever it holds."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

import bastion
from bastion.core import Severity, Verdict

torch = pytest.importorskip("torch")


class TinyNet(torch.nn.Module):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)
        self.bn = torch.nn.BatchNorm1d(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.lin(x))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hf-repo")
    net = TinyNet().eval()
    (root / "config.json").write_text(json.dumps({"architectures": ["TinyNet"], "model_type": "tiny"}))
    (root / "README.md").write_text("---\nlicense: mit\n---\n# tiny\n")
    torch.save(net.state_dict(), root / "pytorch_model.bin")
    torch.save(net.state_dict(), root / "legacy.pt", _use_new_zipfile_serialization=False)
    optimizer = torch.optim.Adam(net.parameters())
    torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict(), "epoch": 3}, root / "ckpt.pt")
    torch.save(net, root / "whole.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated, but its archives are still everywhere
        torch.jit.script(net).save(str(root / "scripted.pt"))
        torch.jit.trace(net, torch.randn(3, 4)).save(str(root / "traced.pt"))
    torch.save(
        {"bf16": torch.zeros(2, dtype=torch.bfloat16), "i8": torch.zeros(3, dtype=torch.int8)}, root / "t.pt"
    )
    try:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(root / "model.safetensors"))
    except ImportError:
        pass
    try:
        import onnx  # noqa: F401

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, torch.randn(3, 4), str(root / "model.onnx"), dynamo=False)
    except (ImportError, ModuleNotFoundError):
        pass
    return root


def test_real_repository_is_clean(repo: Path) -> None:
    report = bastion.scan(repo)
    assert report.verdict is Verdict.SAFE, [
        (f.file, f.member, f.callable, f.message) for f in report.blocking
    ]
    assert not report.problems, report.problems
    # The only thing worth a note: the whole pickled module references a class defined by the user.
    assert {f.callable for f in report.findings} <= {f"{__name__}.TinyNet"}
    assert all(f.severity is Severity.LOW for f in report.findings)


def test_torchscript_archives_are_recognised(repo: Path) -> None:
    report = bastion.scan(repo / "scripted.pt")
    assert {s.format for s in report.scanned if s.member is None} == {"torchscript"}
    assert report.verdict is Verdict.SAFE
    assert not report.findings  # __torch__ classes come from the archive's own TorchScript


def test_same_repository_with_a_payload_is_caught(repo: Path, tmp_path: Path) -> None:
    from tests.conftest import pickle_call

    (tmp_path / "model").mkdir()
    for item in repo.iterdir():
        (tmp_path / "model" / item.name).write_bytes(item.read_bytes())
    (tmp_path / "model" / "training_args.bin").write_bytes(pickle_call("os", "system"))
    report = bastion.scan(tmp_path / "model")
    assert report.verdict is Verdict.UNSAFE
    assert {f.file for f in report.blocking} == {"training_args.bin"}
