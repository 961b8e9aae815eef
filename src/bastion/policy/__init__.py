"""Policy: YAML documents selecting Rego rules, evaluated over verified evidence into a ``Verdict``.

    from bastion.policy import compile_policy, verify_and_decide, Environment
    compiled = compile_policy(Path("policy.yaml"))           # parse + compile once
    verdict = verify_and_decide(compiled, target, bundles, Environment.PROD)
    verdict.outcome, verdict.exit_code, verdict.rules

Importing this package loads neither regopy nor PyYAML; they are loaded when a policy is compiled.
"""

from __future__ import annotations

from bastion.policy.decide import attest_verdict, compile_policy, decide, evidence_bundles, verify_and_decide
from bastion.policy.document import Environment, Level, Policy, load_policy
from bastion.policy.errors import PolicyError
from bastion.policy.verdict import Outcome, RuleVerdict, Verdict

__all__ = [
    "Environment",
    "Level",
    "Outcome",
    "Policy",
    "PolicyError",
    "RuleVerdict",
    "Verdict",
    "attest_verdict",
    "compile_policy",
    "decide",
    "evidence_bundles",
    "load_policy",
    "verify_and_decide",
]
