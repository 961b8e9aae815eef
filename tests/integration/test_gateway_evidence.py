"""Signed evidence at model load: a model signed by a trusted key is served; anything else is refused.

The key is made as a user would make it (passphrase from ``$BASTION_KEY_PASSPHRASE``, state under
``$BASTION_HOME``), the model file is attested with ``bastion.evidence``, and the gateway is started with
``require_evidence``. Refusals are checked where an operator would see them: a 503 for the model, ``/readyz``
unavailable, and a ``model-refused`` security event in the audit log naming the cause.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import joblib
import pytest

import bastion
from bastion.core import Verdict
from bastion.evidence.attest import attest
from bastion.evidence.keys import Keyring
from bastion.evidence.signers import signer_from_uri
from bastion.evidence.targets import parse_target
from bastion.gateway.app import build_app
from bastion.gateway.config import parse_config
from bastion.gateway.runtime import Gateway
from tests.gateway_helpers import Setup, base_config, bearer, client, make_setup

FAST_SCRYPT = 2**14  # tests only: the default (2**17) costs ~0.3 s per key
ROW = [[0.1, -0.2, 0.3, 0.0, 1.0, -1.0]]
pytestmark = pytest.mark.anyio


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bastion-home"
    monkeypatch.setenv("BASTION_HOME", str(path))
    monkeypatch.setenv("BASTION_KEY_PASSPHRASE", "gateway test passphrase")
    return path


def _passphrase(_: str) -> str:
    return os.environ["BASTION_KEY_PASSPHRASE"]


def _sign(model: Path, bundle: Path, *, name: str, home: Path | None = None) -> None:
    """Generate ``name`` in ``home`` (default: ``$BASTION_HOME``) and attest ``file:model`` with it."""
    ring = Keyring(home)
    ring.generate(name, _passphrase(name), scrypt_n=FAST_SCRYPT)
    signer = signer_from_uri(name, _passphrase, keyring=ring)
    (attestation,) = attest(parse_target(f"file:{model}"), signer)
    bundle.write_bytes(attestation.bundle.to_json())


@pytest.fixture()
async def gateways() -> AsyncIterator[list[Gateway]]:
    """Gateways a test opened: closed afterwards even when the test fails (the audit file is released)."""
    opened: list[Gateway] = []
    yield opened
    for gw in opened:
        await gw.close()


@pytest.fixture()
def base(tmp_path: Path) -> Setup:
    """The standard test gateway's files (``clf.joblib``, ``lin.json``, API keys) under ``tmp_path``."""
    return make_setup(tmp_path)


def _setup(base: Setup, evidence: dict[str, Any]) -> Setup:
    """The standard test gateway, with ``clf`` requiring ``evidence`` (the model files are not rewritten)."""
    doc = base_config(base.root, base.X)
    doc["models"][0]["require_evidence"] = evidence
    config = parse_config(json.loads(json.dumps(doc)), base=base.root)
    return Setup(base.root, config, base.keys, base.X)


def _open(setup: Setup, gateways: list[Gateway]) -> Gateway:
    gw = Gateway(setup.config)
    gateways.append(gw)
    return gw


async def _predict(setup: Setup, gw: Gateway) -> tuple[int, dict[str, Any]]:
    async with client(build_app(setup.config, gateway=gw)) as c:
        r = await c.post(
            "/v1/models/clf:predict", json={"instances": ROW}, headers=bearer(setup.keys["alice"])
        )
        ready = await c.get("/readyz")
        assert (ready.status_code == 200) is (r.status_code == 200)
        return r.status_code, r.json()


def _refusal(setup: Setup) -> str:
    (event,) = setup.events("model-refused")
    assert event["model"] == "clf" and "clf" not in {e["model"] for e in setup.events("model-loaded")}
    reason: str = event["reason"]
    return reason


async def test_signed_model_loads_and_serves(
    tmp_path: Path, home: Path, base: Setup, gateways: list[Gateway]
) -> None:
    _sign(tmp_path / "clf.joblib", tmp_path / "clf.sigstore.json", name="release")
    setup = _setup(base, {"bundle": "clf.sigstore.json", "signer": "release"})
    gw = _open(setup, gateways)
    status, body = await _predict(setup, gw)
    assert status == 200 and len(body["predictions"]) == 1
    loaded = {e["model"]: e for e in setup.events("model-loaded")}
    assert "clf" in loaded and not setup.events("model-refused")


async def test_keyring_given_in_the_configuration(
    tmp_path: Path, home: Path, base: Setup, gateways: list[Gateway]
) -> None:
    """``keyring`` names a BASTION_HOME folder (or its trust.json), relative to the configuration file."""
    _sign(tmp_path / "clf.joblib", tmp_path / "clf.sigstore.json", name="release")
    shutil.copytree(home, tmp_path / "ring")
    for keyring in ("ring", "ring/trust.json"):
        setup = _setup(base, {"bundle": "clf.sigstore.json", "keyring": keyring})
        gw = _open(setup, gateways)
        assert (await _predict(setup, gw))[0] == 200


async def test_model_without_evidence_is_refused(
    tmp_path: Path, home: Path, base: Setup, gateways: list[Gateway]
) -> None:
    Keyring().generate("release", _passphrase("release"), scrypt_n=FAST_SCRYPT)
    setup = _setup(base, {"bundle": "missing.sigstore.json", "signer": "release"})
    gw = _open(setup, gateways)
    status, body = await _predict(setup, gw)
    assert status == 503 and body["error"] == "model-refused"
    assert "no-evidence" in _refusal(setup) and "missing.sigstore.json" in _refusal(setup)


def _flip_a_weight(model: Path) -> None:
    """Flip one byte inside the stored coefficients: the file still scans safe and loads, but lies."""
    estimator = joblib.load(model)  # our own file, written by the test helpers
    data = bytearray(model.read_bytes())
    at = data.find(estimator.coef_.tobytes())
    assert at > 0
    data[at + 7] ^= 0x40  # the sign/exponent byte of the first weight
    model.write_bytes(bytes(data))
    assert bastion.scan([model]).verdict is Verdict.SAFE


async def test_tampered_model_is_refused(
    tmp_path: Path, home: Path, base: Setup, gateways: list[Gateway]
) -> None:
    model = tmp_path / "clf.joblib"
    _sign(model, tmp_path / "clf.sigstore.json", name="release")
    _flip_a_weight(model)
    setup = _setup(base, {"bundle": "clf.sigstore.json", "signer": "release"})
    gw = _open(setup, gateways)
    status, body = await _predict(setup, gw)
    assert status == 503 and body["error"] == "model-refused"
    assert "evidence failed (changed)" in _refusal(setup)
    assert "lin" in gw.models and "clf" not in gw.models  # the model without requirements is still served


async def test_one_byte_anywhere_is_refused(
    tmp_path: Path, home: Path, base: Setup, gateways: list[Gateway]
) -> None:
    """Every single-byte change is refused, by the scanner or by the evidence: never loaded."""
    model = tmp_path / "clf.joblib"
    _sign(model, tmp_path / "clf.sigstore.json", name="release")
    original = model.read_bytes()
    setup = _setup(base, {"bundle": "clf.sigstore.json", "signer": "release"})
    for at in range(0, len(original), max(1, len(original) // 12)):
        data = bytearray(original)
        data[at] ^= 0x01
        model.write_bytes(bytes(data))
        gw = _open(setup, gateways)
        assert "clf" not in gw.models and "clf" in gw.refused, at


async def test_model_signed_by_an_untrusted_key_is_refused(
    tmp_path: Path, home: Path, base: Setup, gateways: list[Gateway]
) -> None:
    Keyring().generate("release", _passphrase("release"), scrypt_n=FAST_SCRYPT)  # what we trust
    _sign(tmp_path / "clf.joblib", tmp_path / "clf.sigstore.json", name="release", home=tmp_path / "other")
    setup = _setup(base, {"bundle": "clf.sigstore.json", "signer": "release"})
    gw = _open(setup, gateways)
    status, _ = await _predict(setup, gw)
    assert status == 503
    assert "unknown-signer" in _refusal(setup)


async def test_model_signed_by_another_trusted_key_than_required_is_refused(
    tmp_path: Path, home: Path, base: Setup, gateways: list[Gateway]
) -> None:
    Keyring().generate("release", _passphrase("release"), scrypt_n=FAST_SCRYPT)
    _sign(tmp_path / "clf.joblib", tmp_path / "clf.sigstore.json", name="intern")  # trusted, not required
    setup = _setup(base, {"bundle": "clf.sigstore.json", "signer": "release"})
    gw = _open(setup, gateways)
    assert (await _predict(setup, gw))[0] == 503
    assert "wrong-signer" in _refusal(setup)


async def test_required_signer_missing_from_the_keyring_is_refused(
    tmp_path: Path, home: Path, base: Setup, gateways: list[Gateway]
) -> None:
    _sign(tmp_path / "clf.joblib", tmp_path / "clf.sigstore.json", name="release")
    setup = _setup(base, {"bundle": "clf.sigstore.json", "signer": "nobody"})
    gw = _open(setup, gateways)
    assert (await _predict(setup, gw))[0] == 503
    assert "nobody" in _refusal(setup)
