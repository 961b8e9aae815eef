"""GGUF (llama.cpp) scanner: a bounds-checked header walk and a chat-template injection check.

Layout (versions 1-3, little- or big-endian): magic ``GGUF``, version u32, tensor count and KV
count (u32 in v1, u64 after), KV pairs (string key, u32 type, typed value), tensor infos (name,
n_dims u32, dims, ggml type u32, offset u64), padding to ``general.alignment``, tensor data.
Every count and length is checked against the bytes that remain before anything is read, so a
giant declared length is reported, never allocated (the class of the ggml GGUF parser overflows,
CVE-2024-21802 / -21836 and kin).

``tokenizer.chat_template`` (and ``tokenizer.chat_template.<name>``) is a Jinja2 template that
servers render. Sandbox-escape patterns in it run code on the server (CVE-2024-34359,
llama-cpp-python).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field

from bastion.core import Severity
from bastion.scanners.interface import FormatError, LimitExceeded, Location, ScanContext, TruncatedError, rule

GGUF_TEMPLATE_INJECTION = rule(
    "BAS-M230",
    "gguf-chat-template-injection",
    Severity.CRITICAL,
    "GGUF chat template contains a Jinja sandbox-escape pattern",
    "Do not serve this model. Its chat template reaches Python internals and runs code on the inference "
    "server when rendered (CVE-2024-34359). Upgrade llama-cpp-python to >= 0.2.72 (sandboxed Jinja), and "
    "replace the template with the base model's reviewed template before use.",
    atlas=("AML.T0011.000", "AML.T0010", "AML.M0011", "AML.M0014"),
    cwe=("CWE-1336", "CWE-94"),
)
GGUF_IMPOSSIBLE_SIZE = rule(
    "BAS-M231",
    "gguf-impossible-length",
    Severity.HIGH,
    "GGUF header declares a count or length larger than the file",
    "A count or length that cannot fit in the file targets integer-overflow and heap-overflow bugs in GGUF "
    "parsers (CVE-2024-21802, CVE-2024-21836). Do not load it; update llama.cpp / ggml and obtain the "
    "model from a trusted source.",
    cwe=("CWE-190", "CWE-787"),
)
GGUF_TENSOR_LAYOUT = rule(
    "BAS-M232",
    "gguf-tensor-layout",
    Severity.HIGH,
    "GGUF tensor lies outside the data section, is misaligned or malformed",
    "Tensor data outside the file or misaligned makes loaders read out of bounds. Do not load it; "
    "re-convert the model from its original weights with llama.cpp's convert scripts.",
    cwe=("CWE-125", "CWE-20"),
)

MAX_DIMS = 8
MAX_ARRAY_NESTING = 8
DEFAULT_ALIGNMENT = 32

# ggml type -> (block size, bytes per block), as in ggml.h / gguf-py GGML_QUANT_SIZES.
GGML_TYPES: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 40),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110),
    22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8),
    29: (256, 56), 30: (1, 2), 34: (256, 54), 35: (256, 66), 39: (32, 17), 40: (64, 36), 41: (128, 18),
}  # fmt: skip

# GGUF value types: fixed-size scalars (type -> struct code), 8 = string, 9 = array.
_SCALARS: dict[int, str] = {
    0: "B",
    1: "b",
    2: "H",
    3: "h",
    4: "I",
    5: "i",
    6: "f",
    7: "?",
    10: "Q",
    11: "q",
    12: "d",
}
_STRING, _ARRAY = 8, 9

# Jinja server-side template injection: what a chat template has no business touching.
_SSTI = re.compile(
    r"__[A-Za-z]\w*__"  # dunders: __class__, __mro__, __subclasses__, __globals__, __import__...
    r"|\|\s*attr\b"  # |attr("...") reaches attributes by computed name
    r"|\\x5f|\\u005f|\\137"  # escaped underscores build dunders at render time
    r"|%c"  # "%c"|format(95) builds underscores too
    r"|\b(?:mro|subclasses|globals|builtins|func_globals|f_globals|gi_frame|tb_frame|f_back|co_code)\b"
    r"|\b(?:os|sys|subprocess|importlib|builtins|posix|nt)\.[A-Za-z_]"
    r"|\b(?:popen|system|eval|exec|compile|getattr|setattr|open|import_module)\s*\("
    r"|\b(?:cycler|joiner|lipsum|url_for|get_flashed_messages)\b"
    r"|\b(?:self|request|config)\s*[.\[]"
    r"|['\"]_+['\"]\s*[~+]|[~+]\s*['\"]_+['\"]|__['\"]\s*[~+]|[~+]\s*['\"]__"  # dunders glued at render time
    r"|\[\s*['\"]_"  # subscript by an underscore-led name
    r"|\{%-?\s*(?:import|from|include|extends)\b",
)


@dataclass
class _Reader:
    data: memoryview
    loc: Location
    ctx: ScanContext
    end: int  # end of header parsing budget
    version: int = 3
    order: str = "<"
    pos: int = 0
    scalars: dict[str, int | float | bool] = field(default_factory=dict)

    def need(self, n: int, what: str) -> int:
        """Consume ``n`` bytes, after checking them against the file and the header budget."""
        if n > len(self.data) - self.pos:
            if n > len(self.data):
                self.ctx.finding(
                    self.loc, GGUF_IMPOSSIBLE_SIZE, f"{what} declares {n} bytes", offset=self.pos
                )
            raise TruncatedError(
                f"{what} needs {n} bytes, {len(self.data) - self.pos} remain", offset=self.pos
            )
        if n > self.end - self.pos:
            raise LimitExceeded(f"GGUF header exceeds {self.end} bytes (reading {what})", offset=self.pos)
        start = self.pos
        self.pos += n
        return start

    def unpack(self, code: str, what: str) -> int:
        start = self.need(struct.calcsize(code), what)
        value: int = struct.unpack_from(self.order + code, self.data, start)[0]
        return value

    def count(self, what: str) -> int:
        return self.unpack("I" if self.version == 1 else "Q", what)

    def string(self, what: str, keep: bool = True) -> str:
        n = self.count(f"{what} length")
        start = self.need(n, what)
        if not keep:
            return ""
        return bytes(self.data[start : start + n]).decode("utf-8", errors="replace")


def scan_gguf(data: memoryview, loc: Location, ctx: ScanContext, depth: int) -> None:
    """Walk the GGUF header: KV pairs, chat templates and tensor infos, all bounds-checked."""
    if len(data) < 8 or bytes(data[:4]) != b"GGUF":
        raise FormatError("not a GGUF file (bad magic)", offset=0)
    ctx.mark_scanned(loc, "gguf", len(data))
    r = _Reader(data, loc, ctx, min(len(data), ctx.limits.max_header_bytes), pos=4)
    version = r.unpack("I", "version")
    if version & 0xFFFF == 0 and version >> 16:  # written by a big-endian host
        r.order, version = ">", struct.unpack(">I", struct.pack("<I", version))[0]
    if version not in (1, 2, 3):
        raise FormatError(f"unsupported GGUF version {version}", offset=4)
    r.version = version
    n_tensors = r.count("tensor count")
    n_kv = r.count("KV count")
    min_kv, min_tensor = (4 + 4 + 1, 4 + 4 + 4 + 8) if version == 1 else (8 + 4 + 1, 8 + 4 + 4 + 8)
    for what, n, size in (("KV pairs", n_kv, min_kv), ("tensors", n_tensors, min_tensor)):
        if n * size > len(data) - r.pos:
            ctx.finding(
                loc, GGUF_IMPOSSIBLE_SIZE, f"{n} {what} declared, the file cannot hold them", offset=r.pos
            )
            raise TruncatedError(f"{n} {what} cannot fit in {len(data)} bytes", offset=r.pos)
    for _ in range(n_kv):
        _kv(r, loc, ctx)
    _tensors(r, n_tensors, loc, ctx)


def _kv(r: _Reader, loc: Location, ctx: ScanContext) -> None:
    at = r.pos
    key = r.string("key")
    vtype = r.unpack("I", f"type of {key!r}")
    if vtype == _STRING:
        template = key == "tokenizer.chat_template" or key.startswith("tokenizer.chat_template.")
        value_at = r.pos
        value = r.string(f"value of {key!r}", keep=template)
        if template:
            _check_template(key, value, value_at, loc, ctx)
    elif vtype == _ARRAY:
        _array(r, key, 1)
    elif vtype in _SCALARS:
        r.scalars[key] = r.unpack(_SCALARS[vtype], f"value of {key!r}")
    else:
        raise FormatError(f"KV {key!r} has unknown value type {vtype}", offset=at)


def _array(r: _Reader, key: str, depth: int) -> None:
    if depth > MAX_ARRAY_NESTING:
        raise LimitExceeded(f"arrays in KV {key!r} nest deeper than {MAX_ARRAY_NESTING}", offset=r.pos)
    at = r.pos
    etype = r.unpack("I", f"array type of {key!r}")
    n = r.count(f"array length of {key!r}")
    if etype in _SCALARS:
        r.need(n * struct.calcsize(_SCALARS[etype]), f"array {key!r} of {n} items")
    elif etype == _STRING:
        r.need(n * (4 if r.version == 1 else 8), f"array {key!r} of {n} strings")  # the lengths alone
        r.pos -= n * (4 if r.version == 1 else 8)
        for _ in range(n):
            r.string(f"item of {key!r}", keep=False)
    elif etype == _ARRAY:
        header = 4 + (4 if r.version == 1 else 8)
        r.need(n * header, f"array {key!r} of {n} arrays")
        r.pos -= n * header
        for _ in range(n):
            _array(r, key, depth + 1)
    else:
        raise FormatError(f"array {key!r} has unknown item type {etype}", offset=at)


def _tensors(r: _Reader, n_tensors: int, loc: Location, ctx: ScanContext) -> None:
    alignment = r.scalars.get("general.alignment", DEFAULT_ALIGNMENT)
    if (
        not isinstance(alignment, int)
        or isinstance(alignment, bool)
        or alignment <= 0
        or alignment & (alignment - 1)
    ):
        ctx.finding(
            loc, GGUF_TENSOR_LAYOUT, f"general.alignment {alignment!r} is not a power of two", offset=None
        )
        alignment = DEFAULT_ALIGNMENT
    infos: list[tuple[str, int, int | None, int]] = []  # name, offset, size, info position
    for _ in range(n_tensors):
        at = r.pos
        name = r.string("tensor name")
        n_dims = r.unpack("I", f"n_dims of {name!r}")
        if n_dims > MAX_DIMS:
            ctx.finding(loc, GGUF_TENSOR_LAYOUT, f"tensor {name!r} declares {n_dims} dimensions", offset=at)
            raise FormatError(f"tensor {name!r} has {n_dims} dimensions (max {MAX_DIMS})", offset=at)
        dims = [r.count(f"dimension of {name!r}") for _ in range(n_dims)]
        ggml_type = r.unpack("I", f"type of {name!r}")
        offset = r.unpack("Q", f"offset of {name!r}")
        size: int | None = None
        block = GGML_TYPES.get(ggml_type)
        if block is None:
            ctx.finding(
                loc, GGUF_TENSOR_LAYOUT, f"tensor {name!r} has unknown ggml type {ggml_type}", offset=at
            )
        else:
            elements = 1
            for d in dims:
                elements *= d
            if dims and elements % block[0]:
                message = (
                    f"tensor {name!r} has {elements} elements, not a multiple of the block size {block[0]}"
                )
                ctx.finding(loc, GGUF_TENSOR_LAYOUT, message, offset=at)
            size = -(-elements // block[0]) * block[1]
        infos.append((name, offset, size, at))
    data_start = -(-r.pos // alignment) * alignment
    data_len = len(r.data) - data_start
    for name, offset, size, at in infos:
        if offset % alignment:
            ctx.finding(
                loc,
                GGUF_TENSOR_LAYOUT,
                f"tensor {name!r} offset {offset} not aligned to {alignment}",
                offset=at,
            )
        if offset > data_len or (size is not None and size > data_len - offset):
            message = f"tensor {name!r} [{offset}, +{size}) exceeds the {max(data_len, 0)}-byte data section"
            ctx.finding(loc, GGUF_TENSOR_LAYOUT, message, offset=at)


def _check_template(key: str, template: str, offset: int, loc: Location, ctx: ScanContext) -> None:
    for number, line in enumerate(template.splitlines(), start=1):
        hits = list(dict.fromkeys(m.group(0).strip() for m in _SSTI.finditer(line)))
        if not hits:
            continue
        excerpt = line.strip()
        if len(excerpt) > 160:
            excerpt = excerpt[:157] + "..."
        ctx.finding(
            loc,
            GGUF_TEMPLATE_INJECTION,
            f"{key} line {number}: {', '.join(repr(h) for h in hits[:8])} in {excerpt!r}",
            offset=offset,
            line=number,
            callable=hits[0],
        )
