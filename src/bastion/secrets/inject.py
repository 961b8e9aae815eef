"""``bastion secrets run``: start one program with secrets in its environment, no shell in between.

The child gets the parent's environment, minus the store passphrase, plus the chosen secrets (which
win over variables of the same name). Nothing is written to disk and nothing goes through a shell,
so values never appear in a command line, a history file or ``ps`` output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence

from bastion.errors import UsageError
from bastion.secrets.errors import CommandNotFoundError
from bastion.secrets.store import PASSPHRASE_ENV, SecretStore


def child_environment(secrets: Mapping[str, str], base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.pop(PASSPHRASE_ENV, None)  # the child gets the secrets it needs, never the key to all of them
    env.update(secrets)
    return env


def exit_status(returncode: int) -> int:
    """A shell-style exit status: the child's code, or 128 + N when signal N killed it."""
    return 128 - returncode if returncode < 0 else returncode


def run_with_secrets(
    store: SecretStore, passphrase: str, argv: Sequence[str], *, only: Sequence[str] = ()
) -> int:
    """Run ``argv`` with the secrets injected; return its exit status."""
    program = os.path.basename(argv[0]) if argv else ""
    with store.audited("run", ",".join(only) or "*", program=program, record_success=False):
        if not argv:
            raise UsageError("no command given", hint="bastion secrets run [--only NAME] -- COMMAND ARGS...")
        resolved = shutil.which(argv[0])
        if resolved is None:
            raise CommandNotFoundError(f"cannot run {argv[0]!r}: not found or not executable")
    env = child_environment(store.environment(passphrase, only, program=program))
    try:
        completed = subprocess.run([resolved, *argv[1:]], env=env, check=False)  # noqa: S603 - no shell
    except OSError as exc:
        raise CommandNotFoundError(f"cannot run {argv[0]!r}: {exc.strerror or exc}") from None
    return exit_status(completed.returncode)
