"""Scanning a pickle artifact: successive pickles, trailing data, hidden pickles, nested payloads.

``scan_pickle`` runs the emulator over the first pickle and every pickle concatenated after it
(torch's legacy format writes five). Bytes that do not parse as a further pickle are trailing data
(tensor storage, appended archives): a resynchronisation sweep trial-parses every protocol 2-5
header in them and reports any hidden pickle that references non-allowlisted globals.
"""

from __future__ import annotations

import functools
import re

from bastion.core import Severity
from bastion.scanners.interface import FormatError, Location, ScanContext, TruncatedError
from bastion.scanners.pickle import opcodes as op
from bastion.scanners.pickle import rules
from bastion.scanners.pickle.catalogue import Catalogue, default_catalogue, load_catalogue
from bastion.scanners.pickle.judge import Judge
from bastion.scanners.pickle.machine import Budget, BudgetExhausted, Machine
from bastion.scanners.pickle.torch_legacy import storages_end

SNIFF_BYTES = 64 * 1024
SNIFF_OPS = 20_000
SWEEP_MAX_TRIALS = 20_000
SWEEP_TRIAL_OPS = 50_000
_PROTO_HEADER = re.compile(b"\x80[\x02-\x05]")


@functools.lru_cache(maxsize=8)
def _catalogue_with(extra_paths: tuple[str, ...]) -> Catalogue:
    return load_catalogue(extra_paths)


def _catalogue(ctx: ScanContext) -> Catalogue:
    """The built-in catalogue, extended by the organisation files the scan was given."""
    extra: tuple[str, ...] = tuple(getattr(ctx, "allowlists", ()))
    return _catalogue_with(extra) if extra else default_catalogue()


def looks_like_pickle(data: memoryview) -> bool:
    """Content sniffing: protocol 2-5 header, or a protocol 0/1 stream that parses (or names a global)."""
    if len(data) >= 2 and data[0] == op.PROTO and 2 <= data[1] <= op.HIGHEST_PROTOCOL:
        return True
    if not data or data[0] not in op.KNOWN or data[0] == op.PROTO:
        return False
    view = data[:SNIFF_BYTES]
    judge = Judge(default_catalogue())
    from bastion.scanners.interface import Limits

    machine = Machine(view, 0, judge, Limits(), Budget(SNIFF_OPS), nested=None, joblib=False)
    try:
        machine.run()
    except BudgetExhausted:
        return True  # thousands of valid opcodes: no text file gets that far
    except TruncatedError:
        # a long protocol-0 stream cut by the sniff window is still a pickle
        return judge.saw_named_global or (len(data) > len(view) and machine.ops >= 16)
    except FormatError:
        return judge.saw_named_global
    return True


def _looks_nested(view: memoryview, ctx: ScanContext) -> bool:
    """Is a bytes/str value an embedded artifact worth a nested scan?

    A protocol header alone is not enough: raw tensor bytes start with ``\x80\x02`` now and then.
    The value must parse to a STOP, or name a global before it breaks.
    """
    if len(view) < 4:
        return False
    head = bytes(view[:6])
    if head.startswith((b"PK\x03\x04", b"\x93NUMPY")):
        return True
    if not looks_like_pickle(view):
        return False
    if view[0] != op.PROTO:
        return True  # protocol 0/1: looks_like_pickle already trial-parsed it
    judge = Judge(default_catalogue())
    machine = Machine(view, 0, judge, ctx.limits, Budget(ctx.limits.max_pickle_opcodes), nested=None)
    try:
        machine.run()
    except BudgetExhausted:
        return True
    except FormatError:
        return judge.saw_named_global
    return True


def scan_pickle(data: memoryview, loc: Location, ctx: ScanContext, depth: int) -> None:
    """Scan a pickle file (several pickles concatenated, joblib arrays interleaved, trailing data)."""
    ctx.mark_scanned(loc, "pickle", len(data))
    scan_stream(data, 0, loc, ctx, depth)


def scan_stream(data: memoryview, start: int, loc: Location, ctx: ScanContext, depth: int) -> None:
    """Scan the pickles from ``start`` on; findings are reported even when parsing fails."""
    catalogue = _catalogue(ctx)
    judge = Judge(catalogue)
    budget = Budget(ctx.limits.max_pickle_opcodes)

    def nested(view: memoryview, offset: int) -> None:
        if not _looks_nested(view, ctx):
            return
        child = loc.child(f"@{offset}")
        if ctx.nested is not None:
            ctx.scan_nested(view, child, depth + 1)
        elif depth + 1 <= ctx.limits.max_nesting_depth and looks_like_pickle(view):
            try:
                scan_pickle(view, child, ctx, depth + 1)
            except FormatError as exc:  # the engine would record it the same way
                ctx.problem(child, exc.kind, str(exc), offset=exc.offset)
        else:
            ctx.skip(child, "embedded artifact not scanned (no nested scanner wired)")

    machines: list[Machine] = [Machine(data, start, judge, ctx.limits, budget, nested=nested)]

    try:
        pos = machines[0].run()
        while pos < len(data):
            # A further pickle counts only if it parses to its STOP: its own judge is merged then.
            follower = Judge(catalogue)
            machine = Machine(data, pos, follower, ctx.limits, budget, nested=nested)
            end = _trial(machine)
            if end is not None:
                judge.absorb(follower)
                machines.append(machine)
                pos = end
                continue
            results = [m.result for m in machines]
            after = storages_end(data, pos, results, [pid for m in machines for pid in m.persistent_ids])
            if after is not None:
                ctx.skip(
                    loc, f"{after - pos} bytes of legacy PyTorch tensor storage (raw, never deserialised)"
                )
                pos = after
                machines.append(machines[-1])  # five pickles and their storages are consumed
                continue
            _sweep(data, pos, judge, ctx, loc, budget)
            break
    finally:
        judge.flush(ctx, loc)


def _trial(machine: Machine) -> int | None:
    """Run a machine over what may be a further pickle; its end, or None if it is not one."""
    try:
        return machine.run()
    except BudgetExhausted:
        raise
    except FormatError:
        return None


_HIDDEN_WORTHY = Severity.HIGH


def _sweep(
    data: memoryview, start: int, judge: Judge, ctx: ScanContext, loc: Location, budget: Budget
) -> None:
    """Trial-parse every protocol header in trailing data; report hidden pickles with findings."""
    pos = start
    trials = 0
    catalogue = judge.catalogue
    while True:
        m = _PROTO_HEADER.search(data, pos)
        if m is None:
            return
        at = m.start()
        if at + 2 < len(data) and data[at + 2] not in op.KNOWN:
            pos = at + 1  # a protocol header must be followed by an opcode: cheap filter on tensor data
            continue
        trials += 1
        if trials > SWEEP_MAX_TRIALS or budget.left <= 0:
            ctx.skip(
                loc,
                f"trailing data after offset {start}: hidden-pickle sweep stopped after {trials - 1} trials",
            )
            return
        trial_judge = Judge(catalogue)
        trial_budget = Budget(min(SWEEP_TRIAL_OPS, budget.left))
        machine = Machine(data, at, trial_judge, ctx.limits, trial_budget, nested=None)
        end: int | None = None
        try:
            end = machine.run()
        except FormatError:
            end = None
        budget.left -= machine.ops
        verdicts = [
            v
            for v in trial_judge.verdicts()
            if v.identifier_like and (end is not None or v.severity >= _HIDDEN_WORTHY)
        ]
        if verdicts:
            names = ", ".join(sorted({v.callable for v in verdicts}))
            judge.flag(
                rules.HIDDEN_PICKLE,
                f"pickle@{at}",
                f"a pickle hidden in the trailing data at offset {at} references {names}",
                at,
            )
            judge.absorb(trial_judge)
        pos = end if end is not None else at + 1
