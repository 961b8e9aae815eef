"""TorchScript archives are allowed their own names, and nothing more."""

from __future__ import annotations

from pathlib import Path

import bastion
from bastion.core import Severity
from tests.conftest import pickle_call


def _severities(tmp_path: Path, data: bytes) -> set[Severity]:
    p = tmp_path / "m.pkl"
    p.write_bytes(data)
    return {f.severity for f in bastion.scan(p).findings}


def test_calling_a_torchscript_class_is_still_high(tmp_path: Path) -> None:
    # __torch__ classes are allowlisted for instantiation (NEWOBJ) only, not for REDUCE calls.
    assert Severity.HIGH in _severities(tmp_path, pickle_call("__torch__.evil", "Run"))


def test_torch_jit_load_stays_critical(tmp_path: Path) -> None:
    assert Severity.CRITICAL in _severities(tmp_path, pickle_call("torch.jit", "load", "/tmp/x.pt"))


def test_torchscript_list_builders_are_benign(tmp_path: Path) -> None:
    assert _severities(tmp_path, pickle_call("torch.jit._pickle", "restore_type_tag", "List[int]")) == set()
