"""Errors of the secrets store, each a ``bastion.errors`` error with its own diagnosis (exit 2).

    BastionError
    ├── UsageError
    │   └── SecretNameError        a secret name that is not a valid environment-variable name
    ├── InputError
    │   ├── SecretNotFoundError    no secret (or version) by that name
    │   ├── SecretsPassphraseError the passphrase is missing or wrong
    │   ├── SecretsIntegrityError  a ciphertext or wrapped key fails authentication: the store was altered
    │   └── CommandNotFoundError   ``secrets run`` cannot start the command (exit 127, as a shell would)
    └── ConfigError
        └── StoreFormatError       the store or its audit log is not a file Bastion wrote

No error message ever holds a secret value.
"""

from __future__ import annotations

from bastion.errors import ConfigError, InputError, UsageError


class SecretNameError(UsageError):
    """A secret name Bastion refuses (it must work as an environment-variable name)."""


class SecretNotFoundError(InputError):
    """No secret, or no such version of it, in the store."""


class SecretsPassphraseError(InputError):
    """The store's passphrase is missing or wrong."""


class SecretsIntegrityError(InputError):
    """An authenticated ciphertext did not verify: the store file was altered or corrupted."""


class CommandNotFoundError(InputError):
    """The command given to ``bastion secrets run`` cannot be started."""

    exit_code = 127


class StoreFormatError(ConfigError):
    """The store file (or the audit log) is malformed or of an unknown format."""
