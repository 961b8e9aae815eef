"""Sign, then tamper: every change to the model, the bundle or the trust must fail verification."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.evidence.attest import HashOptions, attest
from bastion.evidence.bundle import Bundle, parse_bundles
from bastion.evidence.errors import BundleFormatError, TargetError
from bastion.evidence.hashing import HashSpec, Method
from bastion.evidence.keys import KeyAlgorithm, Keyring, KeyStatus
from bastion.evidence.targets import parse_target
from bastion.evidence.verify import Cause, Status, verify
from tests.unit.evidence_helpers import make_key, make_model, sign

SPECS = [HashSpec(), HashSpec(Method.SHARDS, shard_size=1000)]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Keyring, Bundle, Bundle]:
    base = tmp_path_factory.mktemp("world")
    ring = Keyring(base / "home")
    _, signer = make_key(ring)
    model = make_model(base / "model")
    return model, ring, sign(model, signer, SPECS[0]), sign(model, signer, SPECS[1])


def _check(
    model: Path, ring: Keyring, bundle: Bundle, **kw: object
) -> tuple[Status, set[tuple[Cause, str | None]]]:
    result = verify(parse_target(f"dir:{model}"), [bundle], ring, **kw)  # type: ignore[arg-type]
    return result.status, {(p.cause, p.file) for p in result.problems}


def test_untouched_model_verifies_and_bundles_are_byte_identical(
    world: tuple[Path, Keyring, Bundle, Bundle],
) -> None:
    model, ring, files_bundle, shards_bundle = world
    for bundle in (files_bundle, shards_bundle):
        assert _check(model, ring, bundle) == (Status.VERIFIED, set())
    _, signer = make_key(Keyring(model.parent / "other-home"))
    again = sign(model, signer).envelope.payload
    assert again == files_bundle.envelope.payload  # the statement does not depend on the key
    signer2 = __import__("bastion.evidence.signers", fromlist=["x"]).signer_from_uri(
        "dev", lambda _: "correct horse battery staple", keyring=ring
    )
    assert sign(model, signer2).to_json() == files_bundle.to_json()  # same key: same bytes


def _copy(model: Path, tmp: Path) -> Path:
    target = tmp / "copy"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(model, target)
    return target


FILES = ["config.json", "README.md", "model.safetensors", "sub/tokenizer.json", "a.b"]
_settings = settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_settings
@given(
    which=st.sampled_from(FILES),
    position=st.integers(min_value=0),
    flip=st.integers(1, 255),
    spec=st.sampled_from(SPECS),
)
def test_any_changed_byte_is_named(
    world: tuple[Path, Keyring, Bundle, Bundle],
    tmp_path: Path,
    which: str,
    position: int,
    flip: int,
    spec: HashSpec,
) -> None:
    model, ring, files_bundle, shards_bundle = world
    copy = _copy(model, tmp_path)
    data = bytearray((copy / which).read_bytes())
    data[position % len(data)] ^= flip
    (copy / which).write_bytes(bytes(data))
    bundle = files_bundle if spec.method is Method.FILES else shards_bundle
    assert _check(copy, ring, bundle) == (Status.FAILED, {(Cause.CHANGED, which)})


@_settings
@given(
    action=st.sampled_from(["add", "add-empty", "remove", "rename"]),
    which=st.sampled_from(FILES),
    spec=st.sampled_from(SPECS),
)
def test_added_removed_and_renamed_files_are_named(
    world: tuple[Path, Keyring, Bundle, Bundle], tmp_path: Path, action: str, which: str, spec: HashSpec
) -> None:
    model, ring, files_bundle, shards_bundle = world
    copy = _copy(model, tmp_path)
    bundle = files_bundle if spec.method is Method.FILES else shards_bundle
    if action.startswith("add"):
        (copy / "sub" / "extra.bin").write_bytes(b"" if action == "add-empty" else b"payload")
        expected = {(Cause.ADDED, "sub/extra.bin")}
    elif action == "remove":
        (copy / which).unlink()
        expected = {(Cause.REMOVED, which)}
    else:
        (copy / which).rename(copy / (which + ".renamed"))
        expected = {(Cause.REMOVED, which), (Cause.ADDED, which + ".renamed")}
    assert _check(copy, ring, bundle) == (Status.FAILED, expected)


def _with_envelope(bundle: Bundle, **changes: object) -> Bundle:
    data = bundle.to_dict()
    data["dsseEnvelope"].update(changes)
    return Bundle.from_dict(data)


def test_a_swapped_or_forged_signature_fails(
    world: tuple[Path, Keyring, Bundle, Bundle], tmp_path: Path
) -> None:
    model, ring, files_bundle, _ = world
    _, stranger = make_key(Keyring(tmp_path / "stranger"), "mallory")
    forged = sign(model, stranger)
    assert _check(model, ring, forged)[1] == {(Cause.UNKNOWN_SIGNER, None)}
    # the stranger's signature under our key hint: found, but does not verify
    swapped = _with_envelope(files_bundle, signatures=forged.to_dict()["dsseEnvelope"]["signatures"])
    assert _check(model, ring, swapped) == (Status.FAILED, {(Cause.BAD_SIGNATURE, None)})
    # a payload edited after signing (claims a different digest for a file)
    statement = json.loads(files_bundle.envelope.payload)
    statement["predicate"]["resources"][0]["digest"] = "0" * 64
    edited = _with_envelope(files_bundle, payload=base64.b64encode(json.dumps(statement).encode()).decode())
    assert _check(model, ring, edited) == (Status.FAILED, {(Cause.BAD_SIGNATURE, None)})


def test_wrong_disabled_expired_and_out_of_scope_signers_fail(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "home")
    model = make_model(tmp_path / "model")
    make_key(ring, "other")
    _, signer = make_key(ring, "dev", expires_in_days=30, scopes=("file",))
    bundle = sign(model, signer)
    status, causes = _check(model, ring, bundle, expected_signer="other")
    assert status is Status.FAILED and causes == {(Cause.WRONG_SIGNER, None), (Cause.OUT_OF_SCOPE, None)}
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=31)
    assert (Cause.KEY_EXPIRED, None) in _check(model, ring, bundle, now=later)[1]
    ring.set_status("dev", KeyStatus.DISABLED)
    assert (Cause.KEY_DISABLED, None) in _check(model, ring, bundle)[1]


def test_ed25519_round_trip(tmp_path: Path) -> None:
    ring = Keyring(tmp_path / "home")
    model = make_model(tmp_path / "model")
    _, signer = make_key(ring, algorithm=KeyAlgorithm.ED25519)
    assert _check(model, ring, sign(model, signer)) == (Status.VERIFIED, set())


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b[: len(b) // 2],
        lambda b: b.replace(b'"payload":"', b'"payload":"!!'),
        lambda b: b.replace(b"v0.3", b"v9.9"),
        lambda b: b.replace(b'"signatures":[', b'"signatures":[],"x":['),
        lambda b: b"",
        lambda b: b"\xff\xfe",
    ],
)
def test_malformed_bundles_are_format_errors(
    world: tuple[Path, Keyring, Bundle, Bundle], mangle: object
) -> None:
    raw = world[2].to_json()
    with pytest.raises(BundleFormatError):
        parse_bundles(mangle(raw), source="test")  # type: ignore[operator]


def test_symlinks_leaving_the_root_are_refused_unless_allowed(
    world: tuple[Path, Keyring, Bundle, Bundle], tmp_path: Path
) -> None:
    model, ring, bundle, _ = world
    copy = _copy(model, tmp_path)
    outside = tmp_path / "secret.txt"
    outside.write_text("outside")
    os.symlink(outside, copy / "link.txt")
    with pytest.raises(TargetError, match="leaving"):
        attest(parse_target(f"dir:{copy}"), make_key(Keyring(tmp_path / "h"))[1], None, HashOptions())
    assert _check(copy, ring, bundle)[0] is Status.UNDECIDED  # cannot check: fails closed, exit 2
    allowed = _check(copy, ring, bundle, options=HashOptions(allow_outside_symlinks=True))
    assert allowed == (Status.FAILED, {(Cause.ADDED, "link.txt")})


def test_no_evidence_is_undecided_not_verified(world: tuple[Path, Keyring, Bundle, Bundle]) -> None:
    model, ring, _, _ = world
    result = verify(parse_target(f"dir:{model}"), [], ring)
    assert result.status is Status.UNDECIDED and result.exit_code == 2
