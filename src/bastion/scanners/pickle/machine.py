"""The pickle emulator: runs one pickle stream on symbolic values, as CPython's C unpickler would.

It follows ``_pickle.c`` opcode by opcode (stack with a mark fence, memo, frames, protocol 0 text
arguments) but never imports or calls anything: GLOBALs become :class:`Global` names, calls become
:class:`Call` records, and every use of a global is reported to the :class:`Judge` as it happens.
Budgets (opcodes, memo, stack, marks) turn hostile inputs into ``LimitExceeded``, never a hang.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from bastion.scanners.interface import FormatError, LimitExceeded, TruncatedError
from bastion.scanners.pickle import opcodes as op
from bastion.scanners.pickle import rules
from bastion.scanners.pickle.state import (
    MAX_MARKS,
    NESTED_START,
    Budget,
    BudgetExhausted,
    MachineState,
    NestedHook,
    describe,
    is_joblib_wrapper,
)
from bastion.scanners.pickle.values import Call, DictV, ExtRef, ListV, PersRef, SetV, Unknown, Use

__all__ = ["Budget", "BudgetExhausted", "Machine", "NestedHook"]

_U16_AT = op.U16.unpack_from
_U32_AT = op.U32.unpack_from


class Machine(MachineState):
    """Emulates one pickle from ``start`` to its STOP; ``run`` returns the offset after STOP."""

    _TABLE: ClassVar[list[Callable[[Machine, int], None] | None]]

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> int:
        """Emulate up to STOP; returns the offset after it. Raises FormatError and subclasses."""
        # Everything the loop reads per opcode is a local: this loop runs once per opcode, and a
        # 1 GB checkpoint of small tensors has millions of them.
        r = self.r
        data = self.data
        end = r.end
        stop = op.STOP
        table = self._dispatch()
        budget = self.budget
        left = budget.left
        stack = self.stack
        max_stack = self.max_stack
        ops = 0
        try:
            while True:
                at = r.pos
                if at >= end:
                    raise TruncatedError("pickle data was truncated (no STOP opcode)", offset=at)
                code = data[at]
                r.pos = at + 1
                ops += 1
                if ops > left:
                    raise BudgetExhausted(
                        f"more than {self.limits.max_pickle_opcodes} pickle opcodes", offset=at
                    )
                if len(stack) > max_stack:
                    raise LimitExceeded(f"pickle stack deeper than {max_stack}", offset=at)
                if code == stop:
                    self.result = self.pop(at)
                    return r.pos
                handler = table[code]
                if handler is None:
                    raise FormatError(f"invalid pickle opcode 0x{code:02x}", offset=at)
                handler(self, at)
        finally:
            budget.left = left - ops
            self.ops += ops

    @classmethod
    def _dispatch(cls) -> list[Callable[[Machine, int], None] | None]:
        """Opcode -> handler, built once per class (machines are created by the thousand)."""
        table = cls.__dict__.get("_TABLE")
        if table is None:
            table = [None] * 256
            for name in dir(cls):
                if name.startswith("op_"):
                    table[getattr(op, name[3:])] = getattr(cls, name)
            cls._TABLE = table
        return table

    # memo
    def op_BINPUT(self, at: int) -> None:
        r = self.r
        p = r.pos
        if p >= r.end:
            raise TruncatedError("pickle data was truncated", offset=at)
        r.pos = p + 1
        self.memo_put(self.data[p], at)

    def op_LONG_BINPUT(self, at: int) -> None:
        # the commonest opcode of a big state dict (every value is memoised): inlined reads
        r = self.r
        p = r.pos + 4
        if p > r.end:
            raise TruncatedError("pickle data was truncated (needs 4 bytes)", offset=at)
        r.pos = p
        idx = _U32_AT(self.data, p - 4)[0]
        memo = self.memo
        limit = self.memo_limit
        if idx >= limit or len(memo) >= limit:
            raise LimitExceeded(f"pickle memo index {idx} beyond the limit of {limit}", offset=at)
        stack = self.stack
        marks = self.marks
        if len(stack) <= (marks[-1] if marks else 0):
            raise FormatError("unpickling stack underflow", offset=at)
        memo[idx] = stack[-1]

    def op_MEMOIZE(self, at: int) -> None:
        self.memo_put(len(self.memo), at)

    def op_PUT(self, at: int) -> None:
        self.memo_put(int(op.parse_int_line(self.r.line(at), at)), at)

    def op_BINGET(self, at: int) -> None:
        r = self.r
        p = r.pos
        if p >= r.end:
            raise TruncatedError("pickle data was truncated", offset=at)
        r.pos = p + 1
        try:
            self.stack.append(self.memo[self.data[p]])
        except KeyError:
            raise FormatError(f"memo value not found at index {self.data[p]}", offset=at) from None

    def op_LONG_BINGET(self, at: int) -> None:
        self.memo_get(self.r.u32(at), at)

    def op_GET(self, at: int) -> None:
        self.memo_get(int(op.parse_int_line(self.r.line(at), at)), at)

    # scalars
    def op_SHORT_BINUNICODE(self, at: int) -> None:
        self.stack.append(self.text_value(self.r.u8(at), at))

    def op_BINUNICODE(self, at: int) -> None:
        r = self.r
        p = r.pos + 4
        if p > r.end:
            raise TruncatedError("pickle data was truncated (needs 4 bytes)", offset=at)
        r.pos = p
        self.stack.append(self.text_value(_U32_AT(self.data, p - 4)[0], at))

    def op_BINUNICODE8(self, at: int) -> None:
        self.stack.append(self.text_value(self.r.u64(at), at))

    def op_SHORT_BINBYTES(self, at: int) -> None:
        self.stack.append(self.bytes_value(self.r.u8(at), at))

    def op_SHORT_BINSTRING(self, at: int) -> None:
        self.stack.append(self.bytes_value(self.r.u8(at), at, True))

    def op_BINBYTES(self, at: int) -> None:
        self.stack.append(self.bytes_value(self.r.u32(at), at))

    def op_BINSTRING(self, at: int) -> None:
        n = self.r.i32(at)
        if n < 0:
            raise FormatError("BINSTRING pickle has negative byte count", offset=at)
        self.stack.append(self.bytes_value(n, at, True))

    def op_BINBYTES8(self, at: int) -> None:
        self.stack.append(self.bytes_value(self.r.u64(at), at))

    op_BYTEARRAY8 = op_BINBYTES8

    def op_BININT1(self, at: int) -> None:
        r = self.r
        p = r.pos
        if p >= r.end:
            raise TruncatedError("pickle data was truncated", offset=at)
        r.pos = p + 1
        self.stack.append(self.data[p])

    def op_BININT2(self, at: int) -> None:
        r = self.r
        p = r.pos + 2
        if p > r.end:
            raise TruncatedError("pickle data was truncated (needs 2 bytes)", offset=at)
        r.pos = p
        self.stack.append(_U16_AT(self.data, p - 2)[0])

    def op_BININT(self, at: int) -> None:
        self.stack.append(self.r.i32(at))

    def op_BINFLOAT(self, at: int) -> None:
        self.stack.append(self.r.f64(at))

    def op_LONG1(self, at: int) -> None:
        self.stack.append(op.decode_long(self.r.take(self.r.u8(at), at)))

    def op_LONG4(self, at: int) -> None:
        n = self.r.i32(at)
        if n < 0:
            raise FormatError("LONG pickle has negative byte count", offset=at)
        if n <= 1024:
            self.stack.append(op.decode_long(self.r.take(n, at)))
        else:
            self.r.need(n, at)
            self.stack.append(Unknown("huge int"))

    def op_NONE(self, at: int) -> None:
        self.stack.append(None)

    def op_NEWTRUE(self, at: int) -> None:
        self.stack.append(True)

    def op_NEWFALSE(self, at: int) -> None:
        self.stack.append(False)

    def op_INT(self, at: int) -> None:
        self.stack.append(op.parse_int_line(self.r.line(at), at))

    def op_LONG(self, at: int) -> None:
        self.stack.append(op.parse_long_line(self.r.line(at), at))

    def op_FLOAT(self, at: int) -> None:
        self.stack.append(op.parse_float_line(self.r.line(at), at))

    def op_STRING(self, at: int) -> None:
        raw = op.parse_string_line(self.r.line(at), at)
        if self.nested is not None and len(raw) >= 4 and raw[0] in NESTED_START:
            self.nested(memoryview(raw), at)
        self.stack.append(raw.decode("latin-1"))

    def op_UNICODE(self, at: int) -> None:
        s = op.parse_unicode_line(self.r.line(at), at)
        self.check_text(s, at)
        self.stack.append(s)

    # stack and containers
    def op_MARK(self, at: int) -> None:
        if len(self.marks) >= MAX_MARKS:
            raise LimitExceeded(f"more than {MAX_MARKS} nested MARKs", offset=at)
        self.marks.append(len(self.stack))

    def op_POP(self, at: int) -> None:
        if self.marks and self.marks[-1] == len(self.stack):
            self.marks.pop()
        else:
            self.pop(at)

    def op_POP_MARK(self, at: int) -> None:
        self.pop_mark(at)

    def op_DUP(self, at: int) -> None:
        self.stack.append(self.top(at))

    def op_EMPTY_TUPLE(self, at: int) -> None:
        self.stack.append(())

    def op_TUPLE1(self, at: int) -> None:
        stack = self.stack
        marks = self.marks
        if len(stack) <= (marks[-1] if marks else 0):
            raise FormatError("unpickling stack underflow", offset=at)
        stack[-1] = (stack[-1],)

    def op_TUPLE2(self, at: int) -> None:
        b = self.pop(at)
        self.stack.append((self.pop(at), b))

    def op_TUPLE3(self, at: int) -> None:
        c = self.pop(at)
        b = self.pop(at)
        self.stack.append((self.pop(at), b, c))

    def op_TUPLE(self, at: int) -> None:
        self.stack.append(tuple(self.pop_mark(at)))

    def op_EMPTY_LIST(self, at: int) -> None:
        self.stack.append(ListV())

    def op_LIST(self, at: int) -> None:
        self.stack.append(ListV(self.pop_mark(at)))

    def op_EMPTY_DICT(self, at: int) -> None:
        self.stack.append(DictV())

    def op_EMPTY_SET(self, at: int) -> None:
        self.stack.append(SetV())

    def op_FROZENSET(self, at: int) -> None:
        self.stack.append(SetV(self.pop_mark(at), frozen=True))

    def _pairs(self, at: int) -> list[tuple[object, object]]:
        items = self.pop_mark(at)
        if len(items) % 2:
            raise FormatError("odd number of items for DICT/SETITEMS", offset=at)
        return list(zip(items[::2], items[1::2], strict=True))

    def op_DICT(self, at: int) -> None:
        self.stack.append(DictV(self._pairs(at)))

    def op_SETITEMS(self, at: int) -> None:
        pairs = self._pairs(at)
        target = self.top(at)
        self.mutate(target, "SETITEMS", at)
        if isinstance(target, DictV):
            target.items.extend(pairs)

    def op_SETITEM(self, at: int) -> None:
        v = self.pop(at)
        k = self.pop(at)
        target = self.top(at)
        self.mutate(target, "SETITEM", at)
        if isinstance(target, DictV):
            target.items.append((k, v))

    def op_APPEND(self, at: int) -> None:
        v = self.pop(at)
        target = self.top(at)
        self.mutate(target, "APPEND", at)
        if isinstance(target, ListV):
            target.items.append(v)

    def op_APPENDS(self, at: int) -> None:
        items = self.pop_mark(at)
        target = self.top(at)
        self.mutate(target, "APPENDS", at)
        if isinstance(target, ListV):
            target.items.extend(items)

    def op_ADDITEMS(self, at: int) -> None:
        items = self.pop_mark(at)
        target = self.top(at)
        self.mutate(target, "ADDITEMS", at)
        if isinstance(target, SetV):
            target.items.extend(items)

    # globals and calls
    def op_GLOBAL(self, at: int) -> None:
        module = self.utf8_line(at)
        name = self.utf8_line(at)
        self.stack.append(self.make_global(module, name, at))

    def op_STACK_GLOBAL(self, at: int) -> None:
        name = self.pop(at)
        module = self.pop(at)
        if isinstance(module, str) and isinstance(name, str):
            self.stack.append(self.make_global(module, name, at))
            return
        what = f"{describe(module)}.{describe(name)}"
        msg = f"STACK_GLOBAL imports a name computed at load time ({what})"
        self.judge.flag(rules.DYNAMIC_GLOBAL, what, msg, at)
        self.stack.append(Unknown("dynamic global"))

    def op_INST(self, at: int) -> None:
        module = self.utf8_line(at)
        name = self.utf8_line(at)
        g = self.make_global(module, name, at)
        self.stack.append(self.call(g, tuple(self.pop_mark(at)), "inst", Use.CALL, at))

    def op_OBJ(self, at: int) -> None:
        items = self.pop_mark(at)
        if not items:
            raise FormatError("OBJ without a class", offset=at)
        self.stack.append(self.call(items[0], tuple(items[1:]), "obj", Use.CALL, at))

    def op_REDUCE(self, at: int) -> None:
        stack = self.stack
        marks = self.marks
        if len(stack) <= (marks[-1] if marks else 0) + 1:
            raise FormatError("unpickling stack underflow", offset=at)
        args = stack.pop()
        stack[-1] = self.call(stack[-1], args, "reduce", Use.CALL, at)

    def op_NEWOBJ(self, at: int) -> None:
        args = self.pop(at)
        cls = self.pop(at)
        self.stack.append(self.call(cls, args, "newobj", Use.NEW, at))

    def op_NEWOBJ_EX(self, at: int) -> None:
        kwargs = self.pop(at)
        args = self.pop(at)
        cls = self.pop(at)
        self.stack.append(self.call(cls, (args, kwargs), "newobj_ex", Use.NEW, at))

    def op_BUILD(self, at: int) -> None:
        state = self.pop(at)
        inst = self.top(at)
        self.mutate(inst, "BUILD", at)
        if isinstance(inst, Call):
            inst.state = state
            inst.built = True
            if self.joblib and is_joblib_wrapper(inst):
                self.skip_joblib_array(inst, at)
                self.stack[-1] = Unknown("joblib array")

    def op_PERSID(self, at: int) -> None:
        pid = self.r.line(at).decode("latin-1")
        self.persistent_ids.append(pid)
        self.stack.append(PersRef(pid))

    def op_BINPERSID(self, at: int) -> None:
        pid = self.pop(at)
        self.persistent_ids.append(pid)
        self.stack.append(PersRef(pid))

    def _ext(self, code: int, at: int) -> None:
        if code <= 0:
            raise FormatError("EXT specifies a code <= 0", offset=at)
        ref = ExtRef(code, at)
        self.judge.reference(ref)
        self.stack.append(ref)

    def op_EXT1(self, at: int) -> None:
        self._ext(self.r.u8(at), at)

    def op_EXT2(self, at: int) -> None:
        self._ext(self.r.u16(at), at)

    def op_EXT4(self, at: int) -> None:
        self._ext(self.r.i32(at), at)

    # framing and buffers
    def op_PROTO(self, at: int) -> None:
        self.proto = self.r.u8(at)
        if self.proto > op.HIGHEST_PROTOCOL:
            raise FormatError(f"unsupported pickle protocol: {self.proto}", offset=at)

    def op_FRAME(self, at: int) -> None:
        n = self.r.u64(at)
        if self.r.pos + n > self.r.end:
            raise TruncatedError(f"FRAME of {n} bytes runs past the end of the data", offset=at)
        self.frame_end = self.r.pos + n

    def op_NEXT_BUFFER(self, at: int) -> None:
        self.stack.append(Unknown("out-of-band buffer"))

    def op_READONLY_BUFFER(self, at: int) -> None:
        self.top(at)

    def utf8_line(self, at: int) -> str:
        raw = self.r.line(at)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("GLOBAL/INST name is not UTF-8", offset=at) from None
