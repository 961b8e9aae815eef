"""Errors of the evidence package, each a ``bastion.errors`` error with its own diagnosis.

    BastionError
    ├── InputError
    │   ├── KeyNotFoundError       no key or trust entry by that name / id
    │   ├── PassphraseError        missing or wrong passphrase for an encrypted private key
    │   ├── BundleFormatError      a bundle or statement is malformed, truncated or of an unknown type
    │   └── TargetError            a target cannot be read (missing file, symlink leaving the root, ...)
    └── ConfigError
        └── TrustFileError         the trust file or a key's metadata is malformed

A verification that *ran* and found a difference is not an error: it is a ``VerificationResult``
(see ``bastion.evidence.verify``). These errors mean "could not decide" (exit 2).
"""

from __future__ import annotations

from bastion.errors import ConfigError, InputError


class KeyNotFoundError(InputError):
    """No key (or trusted public key) by that name or id."""


class PassphraseError(InputError):
    """The passphrase for an encrypted private key is missing or wrong."""


class BundleFormatError(InputError):
    """A Sigstore bundle, DSSE envelope or in-toto statement is malformed."""


class TargetError(InputError):
    """An attestation target cannot be read as asked."""


class TrustFileError(ConfigError):
    """The trust file or key metadata is malformed."""
