"""Each built-in rule passes and fails on real signed evidence; missing/unverified evidence never passes."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bastion.evidence.attest import PredicateKind
from bastion.evidence.keys import Keyring
from bastion.evidence.signers import Signer
from bastion.policy import Environment, Outcome, compile_policy
from bastion.policy.decide import decide
from bastion.policy.projection import load_advisories
from bastion.scanners.workspace.advisories import import_osv
from tests.conftest import pickle_call
from tests.unit.evidence_helpers import make_key, make_model
from tests.unit.policy_helpers import evidence, judge, make_venv, osv_file, provenance, rule, write_policy


@pytest.fixture()
def ring(tmp_path: Path) -> Keyring:
    return Keyring(tmp_path / "home")


@pytest.fixture()
def signer(ring: Keyring) -> Signer:
    return make_key(ring, "release")[1]


@pytest.fixture()
def model(tmp_path: Path) -> Path:
    return make_model(tmp_path / "model")


def test_signed_by_trusted_key(tmp_path: Path, ring: Keyring, signer: Signer, model: Path) -> None:
    policy = write_policy(tmp_path / "p.yaml", "  - id: signed-by-trusted-key\n")
    bundles = evidence(model, signer)
    assert rule(judge(policy, f"dir:{model}", bundles, ring), "signed-by-trusted-key")[0] == "pass"
    stranger = make_key(Keyring(tmp_path / "elsewhere"), "mallory")[1]
    verdict = judge(policy, f"dir:{model}", evidence(model, stranger), ring)
    outcome, reasons = rule(verdict, "signed-by-trusted-key")
    assert outcome == "fail" and any("unknown-signer" in r for r in reasons)
    assert verdict.outcome is Outcome.FAIL
    named = write_policy(
        tmp_path / "n.yaml", "  - id: signed-by-trusted-key\n    params: {signers: [ci-only]}\n"
    )
    outcome, reasons = rule(judge(named, f"dir:{model}", bundles, ring), "signed-by-trusted-key")
    assert outcome == "fail" and "not one of the allowed signers" in reasons[0]


def test_digests_match_and_tampering(tmp_path: Path, ring: Keyring, signer: Signer, model: Path) -> None:
    policy = write_policy(tmp_path / "p.yaml", "  - id: digests-match\n  - id: license-allowlist\n")
    bundles = evidence(model, signer)
    clean = judge(policy, f"dir:{model}", bundles, ring)
    assert clean.outcome is Outcome.PASS and clean.exit_code == 0
    (model / "sub" / "tokenizer.json").write_text('{"v": 2}')
    tampered = judge(policy, f"dir:{model}", bundles, ring)
    outcome, reasons = rule(tampered, "digests-match")
    assert outcome == "fail" and "changed: sub/tokenizer.json was changed since it was signed" in reasons
    # the licence was signed (apache-2.0, allowed) but unverified evidence never reaches a rule
    assert rule(tampered, "license-allowlist")[0] == "fail"
    assert tampered.evidence == () and tampered.exit_code == 1


def test_no_findings_above(tmp_path: Path, ring: Keyring, signer: Signer, model: Path) -> None:
    policy = write_policy(tmp_path / "p.yaml", "  - id: no-findings-above\n    params: {severity: high}\n")
    assert (
        rule(judge(policy, f"dir:{model}", evidence(model, signer), ring), "no-findings-above")[0] == "pass"
    )
    (model / "extra.pkl").write_bytes(pickle_call("os", "system"))
    outcome, reasons = rule(judge(policy, f"dir:{model}", evidence(model, signer), ring), "no-findings-above")
    assert outcome == "fail" and any("extra.pkl" in r and "critical" in r for r in reasons)
    manifest_only = evidence(model, signer, (PredicateKind.MANIFEST,))
    outcome, reasons = rule(judge(policy, f"dir:{model}", manifest_only, ring), "no-findings-above")
    assert outcome == "fail" and "no verified scan report" in reasons[0]


def test_no_unsafe_formats_in_prod_only(tmp_path: Path, ring: Keyring, signer: Signer, model: Path) -> None:
    import pickle

    policy = write_policy(tmp_path / "p.yaml", "  - id: no-unsafe-formats\n")
    assert (
        rule(judge(policy, f"dir:{model}", evidence(model, signer), ring), "no-unsafe-formats")[0] == "pass"
    )
    (model / "weights.bin").write_bytes(pickle.dumps([1, 2, 3]))  # benign, but a pickle: code could run
    bundles = evidence(model, signer)
    outcome, reasons = rule(judge(policy, f"dir:{model}", bundles, ring), "no-unsafe-formats")
    assert outcome == "fail" and reasons == ("weights.bin is pickle, an unsafe serialization format in prod",)
    assert (
        rule(judge(policy, f"dir:{model}", bundles, ring, Environment.DEV), "no-unsafe-formats")[0] == "pass"
    )


def test_license_allowlist(tmp_path: Path, ring: Keyring, signer: Signer, model: Path) -> None:
    policy = write_policy(
        tmp_path / "p.yaml", "  - id: license-allowlist\n    params: {allowed: [apache-2.0]}\n"
    )
    assert (
        rule(judge(policy, f"dir:{model}", evidence(model, signer), ring), "license-allowlist")[0] == "pass"
    )
    (model / "README.md").write_text("---\nlicense: gpl-3.0\n---\n# m\n")
    outcome, reasons = rule(judge(policy, f"dir:{model}", evidence(model, signer), ring), "license-allowlist")
    assert outcome == "fail" and "gpl-3.0 is not on the allowlist" in reasons[0]
    (model / "README.md").write_text("# no front matter\n")
    outcome, reasons = rule(judge(policy, f"dir:{model}", evidence(model, signer), ring), "license-allowlist")
    assert outcome == "fail" and "states the model's licence" in reasons[0]


def test_approved_packages(tmp_path: Path, ring: Keyring, signer: Signer) -> None:
    venv = make_venv(tmp_path / "venv", {"numpy": "1.26.0", "Evil_Pkg": "0.1"})
    from bastion.evidence.attest import HashOptions, attest
    from bastion.evidence.targets import parse_target

    bundles = [a.bundle for a in attest(parse_target(f"env:{venv}"), signer, None, HashOptions())]
    ok = write_policy(
        tmp_path / "ok.yaml", "  - id: approved-packages\n    params: {approved: [numpy, evil-pkg]}\n"
    )
    assert rule(judge(ok, f"env:{venv}", bundles, ring), "approved-packages")[0] == "pass"
    bad = write_policy(tmp_path / "bad.yaml", "  - id: approved-packages\n    params: {approved: [NumPy]}\n")
    outcome, reasons = rule(judge(bad, f"env:{venv}", bundles, ring), "approved-packages")
    assert outcome == "fail" and reasons == ("package evil-pkg 0.1 is not on the approved list",)
    denied = write_policy(tmp_path / "d.yaml", "  - id: approved-packages\n    params: {denied: [numpy]}\n")
    assert rule(judge(denied, f"env:{venv}", bundles, ring), "approved-packages")[1] == (
        "package numpy 1.26.0 is denied",
    )


def test_no_known_vulnerabilities(tmp_path: Path, ring: Keyring, signer: Signer) -> None:
    from bastion.evidence.attest import HashOptions, attest
    from bastion.evidence.targets import parse_target

    venv = make_venv(tmp_path / "venv", {"numpy": "1.26.0"})
    bundles = [a.bundle for a in attest(parse_target(f"env:{venv}"), signer, None, HashOptions())]
    policy = write_policy(tmp_path / "p.yaml", "  - id: no-known-vulnerabilities\n")
    vulnerable = tmp_path / "vuln.json"
    import_osv([osv_file(tmp_path / "osv1.json", "numpy", fixed="2.0.0")], vulnerable)
    source = load_advisories(vulnerable)
    verdict = judge(policy, f"env:{venv}", bundles, ring, advisories=source)
    outcome, reasons = rule(verdict, "no-known-vulnerabilities")
    assert outcome == "fail" and "numpy 1.26.0: GHSA-test-0001 (high)" in reasons[0]
    assert verdict.advisories_digest == source.digest and source.digest.startswith("sha256:")
    patched = tmp_path / "old.json"
    import_osv([osv_file(tmp_path / "osv2.json", "numpy", fixed="1.20.0")], patched)
    assert (
        rule(
            judge(policy, f"env:{venv}", bundles, ring, advisories=load_advisories(patched)),
            "no-known-vulnerabilities",
        )[0]
        == "pass"
    )
    outcome, reasons = rule(judge(policy, f"env:{venv}", bundles, ring), "no-known-vulnerabilities")
    assert outcome == "fail" and "no offline advisory snapshot" in reasons[0]  # no snapshot: never a pass


def test_provenance_required(tmp_path: Path, ring: Keyring, signer: Signer, model: Path) -> None:
    policy = write_policy(
        tmp_path / "p.yaml", "  - id: provenance-required\n    params: {require_isolated: true}\n"
    )
    bundles = evidence(model, signer, (PredicateKind.MANIFEST,))
    outcome, reasons = rule(judge(policy, f"dir:{model}", bundles, ring), "provenance-required")
    assert outcome == "fail" and "no verified provenance" in reasons[0]
    assert (
        rule(judge(policy, f"dir:{model}", bundles, ring, Environment.DEV), "provenance-required")[0]
        == "pass"
    )
    isolated = [*bundles, provenance(model, signer)]
    assert rule(judge(policy, f"dir:{model}", isolated, ring), "provenance-required")[0] == "pass"
    online = [*bundles, provenance(model, signer, network="open")]
    assert rule(judge(policy, f"dir:{model}", online, ring), "provenance-required")[0] == "fail"


def test_no_evidence_is_an_error_never_a_pass(tmp_path: Path, ring: Keyring, model: Path) -> None:
    policy = write_policy(tmp_path / "p.yaml", "  - id: digests-match\n  - id: license-allowlist\n")
    verdict = judge(policy, f"dir:{model}", [], ring)
    assert verdict.outcome is Outcome.ERROR
    assert verdict.exit_code == 2 and all(r.outcome is not Outcome.PASS for r in verdict.rules)
    assert verdict.verification == "undecided"


def test_waivers_apply_until_they_expire(tmp_path: Path, ring: Keyring, signer: Signer, model: Path) -> None:
    (model / "extra.pkl").write_bytes(pickle_call("os", "system"))
    bundles = evidence(model, signer)

    def with_waiver(expires: dt.date) -> Path:
        waiver = (
            f"waivers:\n  - rule: no-findings-above\n    reason: accepted risk, ticket SEC-42\n"
            f"    owner: alice@example.com\n    expires: {expires.isoformat()}\n"
        )
        return write_policy(tmp_path / "w.yaml", "  - id: no-findings-above\n" + waiver)

    today = dt.datetime.now(dt.UTC).date()
    live = judge(with_waiver(today + dt.timedelta(days=1)), f"dir:{model}", bundles, ring)
    (waived,) = live.rules
    assert (
        live.outcome is Outcome.WARN
        and waived.waiver is not None
        and waived.waiver.owner == "alice@example.com"
    )
    expired = judge(with_waiver(today - dt.timedelta(days=1)), f"dir:{model}", bundles, ring)
    assert expired.outcome is Outcome.FAIL and expired.rules[0].waiver is None


def test_waiver_never_covers_tampering(tmp_path: Path, ring: Keyring, signer: Signer, model: Path) -> None:
    waiver = (
        "waivers:\n  - rule: digests-match\n    reason: we know, ship it anyway\n    owner: bob\n"
        "    expires: 2999-01-01\n"
    )
    policy = write_policy(tmp_path / "p.yaml", "  - id: digests-match\n" + waiver)
    bundles = evidence(model, signer)
    (model / "a.b").write_bytes(b"evil")
    verdict = judge(policy, f"dir:{model}", bundles, ring)
    assert verdict.outcome is Outcome.FAIL and verdict.exit_code == 1


def test_level_warning_and_off_per_environment(
    tmp_path: Path, ring: Keyring, signer: Signer, model: Path
) -> None:
    (model / "README.md").write_text("---\nlicense: gpl-3.0\n---\n")
    policy = write_policy(
        tmp_path / "p.yaml",
        "  - id: license-allowlist\n    environments: {dev: off, staging: warning}\n  - id: digests-match\n",
    )
    bundles = evidence(model, signer)
    assert judge(policy, f"dir:{model}", bundles, ring).outcome is Outcome.FAIL
    assert judge(policy, f"dir:{model}", bundles, ring, Environment.STAGING).outcome is Outcome.WARN
    dev = judge(policy, f"dir:{model}", bundles, ring, Environment.DEV)
    assert dev.outcome is Outcome.PASS and [r.rule for r in dev.rules] == ["digests-match"]


def test_verdict_records_evidence_digests(tmp_path: Path, ring: Keyring, signer: Signer, model: Path) -> None:
    import hashlib

    from bastion.evidence.statement import Statement

    bundles = evidence(model, signer)
    policy = write_policy(tmp_path / "p.yaml", "  - id: no-findings-above\n  - id: digests-match\n")
    verdict = judge(policy, f"dir:{model}", bundles, ring)
    payload_digests = {"sha256:" + hashlib.sha256(b.envelope.payload).hexdigest() for b in bundles}
    assert {d for _, d in verdict.evidence} == payload_digests
    scan = [
        b
        for b in bundles
        if Statement.from_bytes(b.envelope.payload).predicate_type.endswith("scan-report/v1")
    ]
    (used,) = [r.evidence for r in verdict.rules if r.rule == "no-findings-above"]
    assert used == ("sha256:" + hashlib.sha256(scan[0].envelope.payload).hexdigest(),)


def test_decide_is_reusable_with_one_compilation(
    tmp_path: Path, ring: Keyring, signer: Signer, model: Path
) -> None:
    from bastion.evidence.targets import parse_target
    from bastion.evidence.verify import verify

    compiled = compile_policy(write_policy(tmp_path / "p.yaml", "  - id: digests-match\n"))
    target = parse_target(f"dir:{model}")
    good = verify(target, evidence(model, signer), ring)
    empty = verify(target, [], ring)
    outcomes = [decide(compiled, r, Environment.PROD, target=target).outcome for r in (good, empty, good)]
    assert outcomes == [Outcome.PASS, Outcome.ERROR, Outcome.PASS]
