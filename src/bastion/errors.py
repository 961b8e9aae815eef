"""One error tree for Bastion, each error carrying its own diagnosis and exit code.

    BastionError                 exit 2 unless said otherwise
    ├── UsageError               bad command-line or API arguments
    ├── InputError               a path is missing, unreadable or outside the allowed root
    └── ConfigError              a catalogue or configuration file is malformed

Findings about scanned artifacts are *not* errors: they are results (see ``bastion.core``).
Errors are for the cases where Bastion cannot do what was asked. The CLI catches them in one place
(``bastion.cli.main``) and exits with ``exit_code``.
"""

from __future__ import annotations


class BastionError(Exception):
    """Base of every error Bastion raises on purpose."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """A user-facing explanation: what went wrong and what to do about it."""
        if self.hint:
            return f"{self.message}\nhint: {self.hint}"
        return self.message


class UsageError(BastionError):
    """The caller asked for something that does not make sense."""


class InputError(BastionError):
    """An input path is missing, unreadable or not allowed."""


class ConfigError(BastionError):
    """A configuration or catalogue file is malformed."""
