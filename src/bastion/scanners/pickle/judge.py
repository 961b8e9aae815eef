"""Judges the globals a pickle uses against the catalogue and turns them into deduplicated findings.

The emulator reports every *use* of a global (referenced, instantiated, called); a global's verdict
depends on the strongest use: denylisted is critical whatever the use, called and not allowlisted
is high, instantiated or referenced and not allowlisted is low (an unverified class).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bastion.core import Severity
from bastion.scanners.interface import Location, Rule, ScanContext
from bastion.scanners.pickle import rules
from bastion.scanners.pickle.catalogue import Catalogue
from bastion.scanners.pickle.values import Callee, ExtRef, Global, Use

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def identifier_like(module: str, name: str) -> bool:
    return bool(_IDENT.match(module) and _IDENT.match(name))


@dataclass
class _Ref:
    callee: Callee
    use: Use
    offset: int
    count: int


@dataclass
class _Flag:
    rule: Rule
    message: str
    offset: int
    count: int


@dataclass(frozen=True)
class Verdict:
    rule: Rule
    callable: str
    message: str
    offset: int
    count: int
    identifier_like: bool

    @property
    def severity(self) -> Severity:
        return self.rule.severity


class Judge:
    """Accumulates uses and flags for one scan; ``flush`` emits findings as they stand."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._refs: dict[str, _Ref] = {}
        self._flags: dict[tuple[str, str], _Flag] = {}
        self._emitted: set[tuple[str, str]] = set()
        self.saw_named_global = False
        self._args: dict[tuple[str, str], tuple[tuple[int, Use], ...]] = {}  # entry_args, per name

    def reference(self, callee: Callee) -> None:
        """A GLOBAL / STACK_GLOBAL / INST / EXT opcode created this name."""
        key = callee.qualname
        ref = self._refs.get(key)
        if ref is None:
            self._refs[key] = _Ref(callee, Use.VALUE, callee.offset, 1)
        else:
            ref.count += 1
        if isinstance(callee, Global) and identifier_like(callee.module, callee.name):
            self.saw_named_global = True

    def use(self, callee: Callee, use: Use) -> None:
        key = callee.qualname
        ref = self._refs.get(key)
        if ref is None:
            self.reference(callee)
            ref = self._refs[key]
        if use > ref.use:
            ref.use = use

    def entry_args(self, callee: Callee) -> tuple[tuple[int, Use], ...]:
        """Argument positions an allowlisted higher-order callable calls or instantiates."""
        if not isinstance(callee, Global):
            return ()
        key = (callee.mapped_module, callee.mapped_name)
        args = self._args.get(key)
        if args is None:
            entry = self.catalogue.entry(*key)
            args = self._args[key] = entry.args if entry is not None else ()
        return args

    def flag(self, rule: Rule, callable: str, message: str, offset: int) -> None:
        key = (rule.rule_id, callable)
        f = self._flags.get(key)
        if f is None:
            self._flags[key] = _Flag(rule, message, offset, 1)
        else:
            f.count += 1

    def _verdict(self, ref: _Ref) -> Verdict | None:
        callee = ref.callee
        if isinstance(callee, ExtRef):
            how = "called" if ref.use is Use.CALL else "referenced"
            r = rules.UNKNOWN_CALLABLE if ref.use is Use.CALL else rules.UNVERIFIED_CLASS
            msg = f"extension code {callee.code} is {how}; it resolves to whatever copyreg registered at load"
            return Verdict(r, callee.qualname, msg, ref.offset, ref.count, False)
        cat = self.catalogue
        raw, mapped = callee.qualname, f"{callee.mapped_module}.{callee.mapped_name}"
        shown = raw if raw == mapped else f"{raw} (loaded as {mapped})"
        named = identifier_like(callee.module, callee.name)
        if cat.denied(callee.module, callee.name) or cat.denied(callee.mapped_module, callee.mapped_name):
            how = {Use.CALL: "calls", Use.NEW: "instantiates", Use.VALUE: "references"}[ref.use]
            msg = f"pickle {how} {shown}, a known-dangerous callable or module: loading it can run code"
            return Verdict(rules.DANGEROUS_GLOBAL, raw, msg, ref.offset, ref.count, named)
        entry = cat.entry(callee.mapped_module, callee.mapped_name)
        if entry is not None and entry.use >= ref.use:
            return None
        if ref.use is Use.CALL:
            msg = f"pickle calls {shown} while loading; it is not in the allowlist catalogue"
            return Verdict(rules.UNKNOWN_CALLABLE, raw, msg, ref.offset, ref.count, named)
        how = "instantiates" if ref.use is Use.NEW else "references"
        msg = f"pickle {how} {shown}, an unverified class or object: loading needs this code to be trusted"
        return Verdict(rules.UNVERIFIED_CLASS, raw, msg, ref.offset, ref.count, named)

    def verdicts(self) -> list[Verdict]:
        out = [v for ref in self._refs.values() if (v := self._verdict(ref)) is not None]
        for (_, name), f in self._flags.items():
            out.append(Verdict(f.rule, name, f.message, f.offset, f.count, True))
        return out

    def flush(self, ctx: ScanContext, loc: Location) -> None:
        """Report every verdict not reported yet (dedup by callable and rule)."""
        for v in sorted(self.verdicts(), key=lambda v: v.offset):
            key = (v.rule.rule_id, v.callable)
            if key in self._emitted:
                continue
            # a stronger verdict for the same callable supersedes a weaker one already emitted
            self._emitted.add(key)
            ctx.finding(loc, v.rule, v.message, offset=v.offset, callable=v.callable, count=v.count)

    def absorb(self, other: Judge) -> None:
        """Take over the uses and flags another judge saw (a hidden pickle found by the sweep)."""
        for name, ref in other._refs.items():
            mine = self._refs.get(name)
            if mine is None:
                self._refs[name] = _Ref(ref.callee, ref.use, ref.offset, ref.count)
            else:
                mine.use = max(mine.use, ref.use)
                mine.count += ref.count
        for key, f in other._flags.items():
            if key not in self._flags:
                self._flags[key] = _Flag(f.rule, f.message, f.offset, f.count)

    def uses(self) -> list[tuple[Callee, Use]]:
        """Every global referenced so far with its strongest use (for catalogue generation)."""
        return [(ref.callee, ref.use) for ref in self._refs.values()]
