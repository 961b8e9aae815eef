"""NumPy dtype arithmetic without NumPy: item sizes from descr strings and joblib array layouts.

joblib's ``NumpyPickler`` writes each array's raw bytes right after the BUILD of its
``NumpyArrayWrapper`` (after an optional alignment byte and padding), or, for object dtypes, a nested
pickle stream. To keep parsing after it, the scanner must compute exactly how many bytes the loader
would read; when it cannot, it raises FormatError rather than guessing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from bastion.scanners.interface import FormatError
from bastion.scanners.pickle.values import Call, DictV, Global

_DESCR = re.compile(r"^[<>|=]?([?bBhHiIlLqQpPefdgFDGSUVOMmuicba])(\d*)(\[[A-Za-z0-9]+\])?$")
_CHAR_SIZES = {
    "?": 1, "b": 1, "B": 1, "h": 2, "H": 2, "i": 4, "I": 4, "l": 8, "L": 8, "q": 8, "Q": 8,
    "p": 8, "P": 8, "e": 2, "f": 4, "d": 8, "g": 16, "F": 8, "D": 16, "G": 32, "O": 8, "M": 8, "m": 8,
}  # fmt: skip
_MAX_FIELD_DEPTH = 32
_SIZED_KINDS = frozenset("biufcSVU")
_VALID = {"b": {1}, "i": {1, 2, 4, 8}, "u": {1, 2, 4, 8}, "f": {2, 4, 8, 16}, "c": {8, 16, 32}}


def descr_itemsize(descr: str, flexible_size: int | None = None) -> tuple[int, bool]:
    """(itemsize, is_object) of a simple descr such as ``<f8``, ``|S5``, ``<U3``, ``O8``, ``<M8[ns]``."""
    m = _DESCR.match(descr)
    if m is None:
        raise ValueError(f"unsupported dtype descr {descr!r}")
    kind, digits = m.group(1), m.group(2)
    if kind == "O":
        return 8, True
    if kind in ("M", "m"):
        return 8, False
    if digits and kind in _SIZED_KINDS:
        n = int(digits)
        if kind in _VALID and n not in _VALID[kind]:
            raise ValueError(f"unsupported dtype descr {descr!r}")
        size = n * 4 if kind == "U" else n
    elif kind in ("S", "V", "U"):
        size = 0
    elif kind in _CHAR_SIZES and not digits:
        size = _CHAR_SIZES[kind]
    else:
        raise ValueError(f"unsupported dtype descr {descr!r}")
    if kind in ("S", "U", "V") and flexible_size is not None and flexible_size >= 0:
        size = flexible_size
    return size, False


def _is_global(value: object, module_suffix: str, name: str) -> bool:
    return (
        isinstance(value, Global)
        and value.mapped_name == name
        and value.mapped_module.startswith(module_suffix)
    )


def pickled_dtype(value: object, at: int, depth: int = 0) -> tuple[int, bool]:
    """(itemsize, has_object) of an emulated ``numpy.dtype(descr, align, copy)`` call plus BUILD state."""
    if depth > _MAX_FIELD_DEPTH:  # memo references can make a dtype contain itself
        raise FormatError("joblib array dtype nests too deeply: cannot compute its length", offset=at)
    if not (isinstance(value, Call) and _is_global(value.func, "numpy", "dtype")):
        raise FormatError(
            "joblib array dtype is not a numpy.dtype: cannot compute the array length", offset=at
        )
    args = value.args
    if not (isinstance(args, tuple) and args and isinstance(args[0], str)):
        raise FormatError("joblib array dtype has no descr string", offset=at)
    state = value.state
    flexible: int | None = None
    has_object = False
    if isinstance(state, tuple) and len(state) >= 8:
        if isinstance(state[5], int) and not isinstance(state[5], bool) and state[5] >= 0:
            flexible = state[5]
        if isinstance(state[7], int) and state[7] & 0x01:
            has_object = True
        fields = state[4]
        if isinstance(fields, DictV):
            for _, spec in fields.items:
                if isinstance(spec, tuple) and spec and isinstance(spec[0], Call):
                    _, obj = pickled_dtype(spec[0], at, depth + 1)
                    has_object = has_object or obj
    try:
        size, is_object = descr_itemsize(args[0], flexible)
    except ValueError as exc:
        raise FormatError(f"{exc}: cannot compute the joblib array length", offset=at) from None
    return size, is_object or has_object


@dataclass(frozen=True)
class ArrayLayout:
    """What follows a joblib wrapper's BUILD: ``nbytes`` raw bytes, or a nested pickle (``nested``)."""

    nbytes: int
    nested: bool
    padded: bool


def joblib_layout(wrapper: Call, at: int) -> ArrayLayout:
    state = wrapper.state
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], DictV):
        state = state[0]
    if not isinstance(state, DictV):
        raise FormatError(
            "joblib NumpyArrayWrapper state is not a dict: cannot compute the array length", offset=at
        )
    itemsize, has_object = pickled_dtype(state.get("dtype"), at)
    align = state.get("numpy_array_alignment_bytes")
    padded = state.has("numpy_array_alignment_bytes") and align is not None
    if has_object:
        return ArrayLayout(0, True, False)
    shape = state.get("shape")
    if not (
        isinstance(shape, tuple)
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    ):
        raise FormatError("joblib array shape is not a tuple of sizes: cannot compute its length", offset=at)
    count = math.prod(shape)
    return ArrayLayout(count * itemsize, False, padded)
