"""The emulator's state: stack with a mark fence, memo, budgets, and how values and calls are made.

Split from :mod:`machine` (the opcode handlers); everything a handler needs to judge a use lives here.
"""

from __future__ import annotations

import _compat_pickle
from collections.abc import Callable

from bastion.scanners.interface import FormatError, LimitExceeded, Limits, TruncatedError
from bastion.scanners.pickle import opcodes as op
from bastion.scanners.pickle import rules
from bastion.scanners.pickle.judge import Judge
from bastion.scanners.pickle.values import (
    Blob,
    Call,
    ExtRef,
    Global,
    PersRef,
    Unknown,
    Use,
)

MAX_STACK = 4_000_000
MAX_MARKS = 100_000
SMALL_BYTES = 4096  # byte strings up to this size are kept as values
MAX_TEXT = 64 * 1024 * 1024  # longer text arguments are kept as Blob references
NESTED_START = frozenset(b"\x80P\x93(c]}il)NSVILFKJ")

NestedHook = Callable[[memoryview, int], None]

JOBLIB_WRAPPERS = frozenset(
    {
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"),
    }
)


def maybe_embedded(view: memoryview) -> bool:
    """Cheap pre-filter before a trial parse: could these bytes be an embedded pickle or archive?

    Protocol 2+ pickles start with PROTO; protocol 0/1 ones start with an opcode and, complete, end
    with STOP. Ordinary strings ("layer1.weight") fail this in O(1), so a state dict with 50,000
    keys does not cost 50,000 trial parses.
    """
    if len(view) < 4:
        return False
    first = view[0]
    if first == 0x80:
        return 2 <= view[1] <= 5
    if first == 0x50 or first == 0x93:  # "PK\x03\x04" zip, "\x93NUMPY"
        return bytes(view[:4]) in (b"PK\x03\x04", b"\x93NUM")
    return first in NESTED_START and view[-1] == 0x2E  # "."


class BudgetExhausted(LimitExceeded):
    """The opcode budget of the whole scan is spent."""


class Budget:
    __slots__ = ("left",)

    def __init__(self, ops: int) -> None:
        self.left = ops


def map_name(module: str, name: str) -> tuple[str, str]:
    """The name the loader imports with fix_imports (Python 2 → 3), as ``_pickle.c`` does."""
    mapped = _compat_pickle.NAME_MAPPING.get((module, name))
    if mapped is not None:
        return mapped
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def resolve_persistent(value: object) -> object:
    """torch's legacy ``persistent_load`` returns the class named in a ``('module', cls, ...)`` id."""
    if isinstance(value, PersRef):
        pid = value.pid
        if isinstance(pid, tuple) and len(pid) >= 2 and pid[0] == "module" and isinstance(pid[1], Global):
            return pid[1]
    return value


def is_joblib_wrapper(obj: object) -> bool:
    """A joblib ``NumpyArrayWrapper`` (or numpy's ``_reconstructor`` of one): array bytes follow its BUILD."""
    if not isinstance(obj, Call):
        return False
    func = obj.func
    if isinstance(func, Global) and func.mapped_name == "_reconstructor" and isinstance(obj.args, tuple):
        func = obj.args[0] if obj.args else None
    return isinstance(func, Global) and (func.mapped_module, func.mapped_name) in JOBLIB_WRAPPERS


def describe(value: object, depth: int = 0) -> str:
    if isinstance(value, Global | ExtRef):
        return value.qualname
    if isinstance(value, Call) and depth < 3:
        return f"<result of {describe(value.func, depth + 1)}>"
    if isinstance(value, PersRef):
        return "<persistent id>"
    return f"<{type(value).__name__.lower()}>"


class MachineState:
    """Stack, memo and value helpers of one emulated pickle (see :class:`machine.Machine`)."""

    def __init__(
        self,
        data: memoryview,
        start: int,
        judge: Judge,
        limits: Limits,
        budget: Budget,
        *,
        nested: NestedHook | None = None,
        joblib: bool = True,
    ) -> None:
        self.r = op.Reader(data, start)
        self.data = data
        self.judge = judge
        self.limits = limits
        self.budget = budget
        self.nested = nested
        self.joblib = joblib
        self.stack: list[object] = []
        self.marks: list[int] = []
        self.memo: dict[int, object] = {}
        self.proto = 0
        self.frame_end = -1
        self.ops = 0
        self.result: object = None  # the value STOP returns
        self.persistent_ids: list[object] = []  # torch's legacy loader needs them to skip storages
        self.max_stack = getattr(limits, "max_pickle_stack", MAX_STACK)
        self.memo_limit = limits.max_pickle_memo

    # -- stack helpers ---------------------------------------------------------------------------
    def pop(self, at: int) -> object:
        stack = self.stack
        if len(stack) <= (self.marks[-1] if self.marks else 0):
            raise FormatError("unpickling stack underflow", offset=at)
        return stack.pop()

    def top(self, at: int) -> object:
        if len(self.stack) <= (self.marks[-1] if self.marks else 0):
            raise FormatError("unpickling stack underflow", offset=at)
        return self.stack[-1]

    def pop_mark(self, at: int) -> list[object]:
        if not self.marks:
            raise FormatError("could not find MARK", offset=at)
        k = self.marks.pop()
        items = self.stack[k:]
        del self.stack[k:]
        return items

    def push(self, value: object, at: int) -> None:
        # The stack limit is enforced by the run loop (an opcode pushes at most one value).
        self.stack.append(value)

    def memo_put(self, idx: int, at: int) -> None:
        if idx < 0:
            raise FormatError("negative PUT argument", offset=at)
        if idx >= self.memo_limit or len(self.memo) >= self.memo_limit:
            raise LimitExceeded(f"pickle memo index {idx} beyond the limit of {self.memo_limit}", offset=at)
        stack = self.stack
        if len(stack) <= (self.marks[-1] if self.marks else 0):
            raise FormatError("unpickling stack underflow", offset=at)
        self.memo[idx] = stack[-1]

    def memo_get(self, idx: int, at: int) -> None:
        try:
            self.stack.append(self.memo[idx])
        except KeyError:
            raise FormatError(f"memo value not found at index {idx}", offset=at) from None

    # -- values ----------------------------------------------------------------------------------
    def make_global(self, module: str, name: str, at: int) -> Global:
        mm, mn = map_name(module, name)
        g = Global(module, name, mm, mn, at)
        self.judge.reference(g)
        return g

    def call(self, func: object, args: object, kind: str, use: Use, at: int) -> Call:
        judge = self.judge
        func = resolve_persistent(func)
        if isinstance(func, Global | ExtRef):
            judge.use(func, use)
            if isinstance(args, tuple):
                for i, arg_use in judge.entry_args(func):
                    if i < len(args):
                        self.called_arg(func, args[i], arg_use, at)
        else:
            what = describe(func)
            judge.flag(
                rules.COMPUTED_CALLABLE,
                what,
                f"pickle {'calls' if use is Use.CALL else 'instantiates'} {what}, a value computed at load",
                at,
            )
        return Call(func, args, kind, at)

    def called_arg(self, func: Global | ExtRef, arg: object, use: Use, at: int) -> None:
        if isinstance(arg, Global | ExtRef):
            self.judge.use(arg, use)
        elif isinstance(arg, PersRef | Unknown):
            # a Call result in this position is an object whose own call was judged already
            # (numpy's __randomstate_ctor receives a bit generator instance, for example)
            what = describe(arg)
            self.judge.flag(
                rules.COMPUTED_CALLABLE,
                what,
                f"{func.qualname} would call {what}, a value computed at load time",
                at,
            )

    def mutate(self, target: object, opname: str, at: int) -> None:
        if isinstance(target, Global | ExtRef):
            self.judge.flag(
                rules.MUTATES_GLOBAL,
                target.qualname,
                f"{opname} sets state on the imported object {target.qualname}",
                at,
            )

    def bytes_value(self, n: int, at: int, text: bool = False) -> object:
        start = self.r.need(n, at)
        if self.nested is not None and maybe_embedded(self.data[start : start + n]):
            self.nested(self.data[start : start + n], start)
        if n <= SMALL_BYTES:
            raw = bytes(self.data[start : start + n])
            return raw.decode("latin-1") if text else raw
        return Blob(start, n, text)

    def text_value(self, n: int, at: int) -> object:
        start = self.r.need(n, at)
        if n > MAX_TEXT:
            return Blob(start, n, True)
        try:
            s = str(self.data[start : start + n], "utf-8", "surrogatepass")
        except UnicodeDecodeError:
            raise FormatError("invalid UTF-8 in a unicode argument", offset=at) from None
        self.check_text(s, start)
        return s

    def check_text(self, s: str, at: int) -> None:
        if self.nested is not None and len(s) >= 4 and ord(s[0]) in NESTED_START:
            raw = s.encode("latin-1", "replace") if s.isascii() or max(s) <= "\xff" else s.encode("utf-8")
            if maybe_embedded(memoryview(raw)):
                self.nested(memoryview(raw), at)

    # -- joblib ------------------------------------------------------------------------------------
    def skip_joblib_array(self, wrapper: Call, at: int) -> None:
        from bastion.scanners.pickle.dtypes import joblib_layout  # off the start-up of other scans

        r = self.r
        if self.frame_end > r.pos:
            raise FormatError("joblib array data starts inside a pickle frame: cannot decide", offset=at)
        layout = joblib_layout(wrapper, at)
        if layout.nested:
            from bastion.scanners.pickle.machine import Machine

            inner = Machine(
                self.data, r.pos, self.judge, self.limits, self.budget, nested=self.nested, joblib=False
            )
            r.pos = inner.run()
            return
        if layout.padded:
            pad = r.u8(at)
            if pad > 255:
                raise FormatError("bad joblib padding", offset=at)
            r.need(pad, at)
        if r.pos + layout.nbytes > r.end:
            raise TruncatedError(f"joblib array data truncated (needs {layout.nbytes} bytes)", offset=r.pos)
        r.pos += layout.nbytes
        self.frame_end = -1
