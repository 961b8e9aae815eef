"""Malformed policies and Rego modules fail naming the file and line; the engine fails closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.policy import PolicyError, compile_policy, load_policy
from bastion.policy.engine import CompiledPolicy

HEAD = "apiVersion: bastion/v1\nkind: Policy\nname: t\n"


def _policy(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "line", "needle"),
    [
        (HEAD + "rules:\n  - id: digests-match\n    levle: error\n", 6, "unknown field 'levle'"),
        (
            HEAD + "rules:\n  - id: digests-match\n    level: fatal\n",
            6,
            "level must be one of error, warning, off",
        ),
        (HEAD + "rules:\n  - id: no-such-rule\n", 5, "not a built-in rule"),
        (HEAD + "rules: []\n", 4, "at least one rule"),
        (
            HEAD + "rules:\n  - id: digests-match\n  - id: digests-match\n",
            6,
            "listed twice (first on line 5)",
        ),
        (HEAD + "rules:\n  - id: digests-match\n    environments: {qa: off}\n", 6, "unknown field 'qa'"),
        (
            HEAD + "rules:\n  - id: digests-match\nwaivers:\n  - rule: digests-match\n    reason: ok\n"
            "    owner: me\n    expires: 2030-01-01\n",
            8,
            "a real reason",
        ),
        (
            HEAD
            + "rules:\n  - id: digests-match\nwaivers:\n  - rule: digests-match\n    reason: a good reason\n"
            "    owner: me\n    expires: soon\n",
            10,
            "expires must be a date",
        ),
        (
            HEAD + "rules:\n  - id: digests-match\nwaivers:\n  - rule: other\n    reason: a good reason\n"
            "    owner: me\n    expires: 2030-01-01\n",
            7,
            "does not use",
        ),
        (HEAD + "rules:\n  - id: digests-match\n    params: [1, 2]\n", 6, "params must be a mapping"),
        (
            HEAD + "rules:\n  - id: x\n    package: bastion.rules.digests_match\n",
            6,
            "not a usable Rego package",
        ),
        ("apiVersion: bastion/v2\nkind: Policy\nname: t\nrules: []\n", 1, "apiVersion must be"),
        (HEAD + "rules:\n  - id: digests-match\n   level: error\n", 6, "not valid YAML"),
        (HEAD + "rules:\n  - id: [unclosed\n", 6, "not valid YAML"),
        ("kind: Policy\nname: t\nrules: []\n", 1, "missing 'apiVersion'"),
    ],
)
def test_malformed_policy_names_file_and_line(tmp_path: Path, body: str, line: int, needle: str) -> None:
    path = _policy(tmp_path, body)
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert caught.value.path == str(path)
    assert caught.value.line == line, caught.value.message
    assert needle in caught.value.message
    assert caught.value.message.startswith(f"{path}:{line}: ")


def test_yaml_tags_never_construct_objects(tmp_path: Path) -> None:
    path = _policy(
        tmp_path,
        HEAD + "rules:\n  - id: digests-match\n    params: {x: !!python/object/apply:os.system [id]}\n",
    )
    with pytest.raises(PolicyError):
        compile_policy(path)


def test_bad_rego_module_names_its_file_and_line(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    module = tmp_path / "mine.rego"
    module.write_text("package mine\n\nimport rego.v1\n\nallow if {\n")
    path = _policy(tmp_path, HEAD + "modules: [mine.rego]\nrules:\n  - id: mine\n    package: mine\n")
    with pytest.raises(PolicyError) as caught:
        compile_policy(path)
    assert caught.value.path == str(module) and caught.value.line == 5
    assert "unclosed" in caught.value.message
    assert "Errors:" not in capfd.readouterr().out  # rego-cpp's own printout is captured into the hint


def test_rule_package_must_exist(tmp_path: Path) -> None:
    path = _policy(tmp_path, HEAD + "rules:\n  - id: mine\n    package: nowhere.to_be_found\n")
    with pytest.raises(PolicyError) as caught:
        compile_policy(path)
    assert caught.value.line == 5 and "no module declares" in caught.value.message


def _custom(tmp_path: Path, rego: str) -> CompiledPolicy:
    (tmp_path / "c.rego").write_text("package custom\n\nimport rego.v1\n\n" + rego)
    return compile_policy(
        _policy(tmp_path, HEAD + "modules: [c.rego]\nrules:\n  - id: c\n    package: custom\n")
    )


DOC = {
    "environment": "prod",
    "evidence": {},
    "verification": {"status": "verified", "problems": []},
    "signers": [],
    "subject": {"name": "m", "digest": ""},
    "x": 1,
}


def test_no_explicit_allow_is_a_deny(tmp_path: Path) -> None:
    raw = _custom(tmp_path, "deny contains 1 if false\n").evaluate(DOC)["c"]
    assert not raw.allow and "did not explicitly allow" in raw.reasons[0]


def test_allow_with_a_reason_to_deny_is_a_deny(tmp_path: Path) -> None:
    raw = _custom(tmp_path, 'allow := true\n\ndeny contains "nope" if input.x == 1\n').evaluate(DOC)["c"]
    assert not raw.allow and raw.reasons == ("nope",)


def test_allow_must_be_exactly_true(tmp_path: Path) -> None:
    raw = _custom(tmp_path, 'allow := "yes"\n').evaluate(DOC)["c"]
    assert not raw.allow


def test_runtime_errors_are_errors_not_passes(tmp_path: Path) -> None:
    conflict = _custom(tmp_path, "allow := true\n\nallow := false if input.x == 1\n").evaluate(DOC)["c"]
    assert not conflict.allow and conflict.error and "multiple outputs" in conflict.error
    builtin = _custom(tmp_path, 'allow if { 1 / "two" == 3 }\n').evaluate(DOC)["c"]
    assert not builtin.allow and builtin.error is not None


def test_one_broken_rule_does_not_hide_the_others(tmp_path: Path) -> None:
    (tmp_path / "c.rego").write_text(
        "package custom\n\nimport rego.v1\n\nallow := true\n\nallow := false if input.x == 1\n"
    )
    path = _policy(
        tmp_path, HEAD + "modules: [c.rego]\nrules:\n  - id: c\n    package: custom\n  - id: digests-match\n"
    )
    results = compile_policy(path).evaluate(DOC)
    assert results["c"].error is not None
    assert results["digests-match"].error is None and not results["digests-match"].allow


def test_the_example_policy_loads() -> None:
    example = Path(__file__).parents[2] / "examples" / "policies"
    for path in sorted(example.glob("*/policy.yaml")):
        assert compile_policy(path).policy.rules
