# mypy: disable-error-code="import-untyped"
"""skops files: a scikit-learn estimator loaded only when every type it names is on the gateway's allowlist.

skops' own defaults are trusted; anything more must sit under ``SKOPS_TRUSTED_PACKAGES`` *and* be allowed
by Bastion's pickle catalogue. skops and scikit-learn are imported only when a skops model is loaded.
"""

from __future__ import annotations

from pathlib import Path

from bastion.gateway.errors import ModelRefused
from bastion.gateway.predictors import SklearnModel

# skops: the types a file may add to skops' own defaults, beyond which nothing is trusted. A type must sit
# under one of these packages *and* be allowed by Bastion's pickle catalogue (the scikit-learn / NumPy types
# it knows rebuild data, not code).
SKOPS_TRUSTED_PACKAGES = ("sklearn.", "numpy.")


def skops_untrusted(types: list[str]) -> list[str]:
    """The types of ``types`` (skops' ``get_untrusted_types``) that the gateway does not trust."""
    from bastion.scanners.pickle.catalogue import default_catalogue

    catalogue = default_catalogue()
    refused = []
    for qualname in types:
        module, _, name = qualname.rpartition(".")
        if not (
            qualname.startswith(SKOPS_TRUSTED_PACKAGES)
            and catalogue.entry(module, name) is not None
            and not catalogue.denied(module, name)
        ):
            refused.append(qualname)
    return refused


def load_skops(path: Path) -> SklearnModel:
    import zipfile

    import skops.io as sio
    from sklearn.base import BaseEstimator

    try:
        types = sio.get_untrusted_types(file=path)
        refused = skops_untrusted(types)
        if refused:
            raise ModelRefused(
                f"skops file names types outside the gateway's allowlist: {', '.join(refused)}"
            )
        estimator = sio.load(path, trusted=types)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"not a readable skops file ({type(exc).__name__}: {exc})") from None
    if not isinstance(estimator, BaseEstimator):
        raise ValueError(f"the file holds a {type(estimator).__name__}, not a scikit-learn estimator")
    return SklearnModel(estimator)
