"""Static pickle analysis: emulates the unpickler on symbolic values and judges every global it uses.

Never calls ``pickle.load`` and never imports what a pickle names. See ``machine`` (the emulator),
``judge`` (verdicts), ``catalogue`` (allow/deny data) and ``scan`` (streams, trailing data).
"""

from bastion.scanners.pickle.catalogue import Catalogue, Entry, default_catalogue, load_catalogue
from bastion.scanners.pickle.rules import (
    COMPUTED_CALLABLE,
    DANGEROUS_GLOBAL,
    DYNAMIC_GLOBAL,
    HIDDEN_PICKLE,
    MUTATES_GLOBAL,
    NPY_INTEGRITY,
    UNKNOWN_CALLABLE,
    UNVERIFIED_CLASS,
)
from bastion.scanners.pickle.scan import looks_like_pickle, scan_pickle, scan_stream

__all__ = [
    "COMPUTED_CALLABLE",
    "DANGEROUS_GLOBAL",
    "DYNAMIC_GLOBAL",
    "HIDDEN_PICKLE",
    "MUTATES_GLOBAL",
    "NPY_INTEGRITY",
    "UNKNOWN_CALLABLE",
    "UNVERIFIED_CLASS",
    "Catalogue",
    "Entry",
    "default_catalogue",
    "load_catalogue",
    "looks_like_pickle",
    "scan_pickle",
    "scan_stream",
]
