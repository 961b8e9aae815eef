"""An encrypted local secrets store: the fix the workspace scanner's secret findings point to.

Values are sealed with envelope encryption (a random AES-256-GCM data key per version, wrapped by a
master key that scrypt derives from a passphrase), versioned so that a rotation keeps the previous
value until it is deleted, injected into one process at a time, and every access is audited.

    from bastion.secrets import SecretStore
    store = SecretStore()                      # $BASTION_HOME/secrets
    store.set("HF_TOKEN", value, passphrase)
    store.get("HF_TOKEN", passphrase)
"""

from bastion.secrets.errors import (
    CommandNotFoundError,
    SecretNameError,
    SecretNotFoundError,
    SecretsIntegrityError,
    SecretsPassphraseError,
    StoreFormatError,
)
from bastion.secrets.inject import run_with_secrets
from bastion.secrets.store import PASSPHRASE_ENV, SecretInfo, SecretStore, VersionInfo

__all__ = [
    "PASSPHRASE_ENV",
    "CommandNotFoundError",
    "SecretInfo",
    "SecretNameError",
    "SecretNotFoundError",
    "SecretStore",
    "SecretsIntegrityError",
    "SecretsPassphraseError",
    "StoreFormatError",
    "VersionInfo",
    "run_with_secrets",
]
