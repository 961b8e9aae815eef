"""Errors of the policy package.

    BastionError
    └── ConfigError
        └── PolicyError        a policy file or Rego module is malformed (names the file and line)

A policy that *ran* and denied is not an error: it is a ``Verdict`` (see ``bastion.policy.verdict``).
A rule that could not be evaluated is recorded in the verdict as ``error``, never as a pass.
"""

from __future__ import annotations

from pathlib import Path

from bastion.errors import ConfigError


class PolicyError(ConfigError):
    """A policy document or one of its Rego modules cannot be used."""

    def __init__(
        self,
        message: str,
        *,
        path: Path | str | None = None,
        line: int | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}", hint=hint)
        self.path = str(path) if path is not None else None
        self.line = line
