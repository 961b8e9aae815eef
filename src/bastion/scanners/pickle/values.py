"""Symbolic values of the pickle emulator: what a stack or memo slot *would* hold at load time.

Nothing here is ever instantiated from the pickle's own names: a ``Global`` is a name, a ``Call`` is
the record of a call the loader would make. Scalars (ints, floats, short strings) are kept as plain
Python values; long byte strings stay as ``Blob`` references into the scanned buffer.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import cached_property


class Use(enum.IntEnum):
    """How the loader would use a global; a catalogue entry permits uses up to its level."""

    VALUE = 0  # only referenced (passed around, compared, stored)
    NEW = 1  # instantiated without running __init__ / __reduce__ code (NEWOBJ + BUILD)
    CALL = 2  # called (REDUCE, INST, OBJ, or by a higher-order allowlisted callable)

    @classmethod
    def parse(cls, text: str) -> Use:
        return _USES[text]


_USES = {use.name.lower(): use for use in Use}  # built once: the catalogue parses a thousand uses


@dataclass(frozen=True)
class Global:
    """A name resolved by GLOBAL / STACK_GLOBAL / INST: ``mapped`` is the Python 3 name after fix_imports."""

    module: str
    name: str
    mapped_module: str
    mapped_name: str
    offset: int

    @cached_property  # asked on every use of the global: a state dict calls one per tensor
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class ExtRef:
    """An EXT1/EXT2/EXT4 reference: resolved through copyreg's extension registry at load time."""

    code: int
    offset: int

    @property
    def qualname(self) -> str:
        return f"copyreg.extension[{self.code}]"


@dataclass(frozen=True)
class Blob:
    """Bytes or text too long to keep: a reference to ``length`` bytes at ``offset`` of the buffer."""

    offset: int
    length: int
    text: bool


@dataclass(frozen=True)
class PersRef:
    """The result of ``persistent_load(pid)`` (torch storages, for example)."""

    pid: object


@dataclass(frozen=True)
class Unknown:
    """A value the emulator cannot know (out-of-band buffers, computed globals...)."""

    why: str


@dataclass(eq=False)
class Call:
    """The result of a call or instantiation the loader would perform; BUILD fills ``state``."""

    func: object
    args: object
    kind: str  # "reduce", "newobj", "newobj_ex", "inst", "obj"
    offset: int
    state: object = None
    built: bool = False


@dataclass(eq=False)
class ListV:
    items: list[object] = field(default_factory=list)


@dataclass(eq=False)
class DictV:
    items: list[tuple[object, object]] = field(default_factory=list)

    def get(self, key: str) -> object:
        for k, v in self.items:
            if k == key and isinstance(k, str):
                return v
        return None

    def has(self, key: str) -> bool:
        return any(isinstance(k, str) and k == key for k, _ in self.items)


@dataclass(eq=False)
class SetV:
    items: list[object] = field(default_factory=list)
    frozen: bool = False


Callee = Global | ExtRef
