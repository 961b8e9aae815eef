"""Jupyter notebooks: decode the JSON, hand every cell's source and text outputs to the checks as
plain text, and map each hit back to the raw file line and to the cell and line inside it.

In a raw ``.ipynb`` every source line is a JSON string ending in ``\\n",``: patterns written for
code break on the escaping, and base64 images, widget ids and kernel metadata look like secrets.
Here the checks see the decoded text of code and markdown cells and of textual outputs (streams,
``text/plain``, ``text/html``, ``text/markdown``, error tracebacks); images and widget state are
never scanned as text.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any

from bastion.scanners.interface import FormatError
from bastion.scanners.workspace.text import LineIndex

TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex", "application/json")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class Segment:
    """The decoded text of one cell source or output, with the raw line each of its pieces starts on."""

    label: str  # "cell 3" / "cell 3 output 1"
    kind: str  # "code" | "markdown" | "raw" | "output"
    text: str
    starts: tuple[int, ...]  # offset in ``text`` where each JSON string piece starts
    raw_lines: tuple[int, ...]  # the raw file line of each piece
    language: str = "python"

    def raw_line(self, offset: int) -> int:
        i = bisect.bisect_right(self.starts, offset) - 1
        return self.raw_lines[max(i, 0)] if self.raw_lines else 1

    def cell_line(self, offset: int) -> int:
        return self.text.count("\n", 0, offset) + 1

    def offset_of_line(self, line: int) -> int:
        pos = 0
        for _ in range(line - 1):
            nxt = self.text.find("\n", pos)
            if nxt < 0:
                return len(self.text)
            pos = nxt + 1
        return pos


class _Str:
    __slots__ = ("index", "value")

    def __init__(self, index: int, value: str) -> None:
        self.index = index
        self.value = value


def _string_offsets(raw: str) -> list[int]:
    """Offsets of every JSON string token (keys and values), in document order."""
    out: list[int] = []
    find = raw.find
    pos = find('"')
    while pos >= 0:
        out.append(pos)
        _, end = scanstring(raw, pos + 1)
        pos = find('"', end)
    return out


def _annotate(obj: Any, counter: list[int]) -> Any:
    """A mirror of a parsed JSON document where each string carries its document-order index."""
    if isinstance(obj, str):
        counter[0] += 1
        return _Str(counter[0] - 1, obj)
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            counter[0] += 1  # the key is a string token too
            out[k] = _annotate(v, counter)
        return out
    if isinstance(obj, list):
        return [_annotate(v, counter) for v in obj]
    return obj


def looks_like_notebook(head: str) -> bool:
    stripped = head.lstrip()
    return stripped.startswith("{") and '"cells"' in head and ('"nbformat"' in head or '"cell_type"' in head)


def parse_notebook(raw: str) -> Iterator[Segment]:
    """Every text segment of a notebook. Raises FormatError when the JSON is not a notebook."""
    try:
        doc = json.loads(raw)
        offsets = _string_offsets(raw)
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"notebook is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("cells"), list):
        raise FormatError("JSON document has no 'cells' list: not a notebook")
    language = "python"
    meta = doc.get("metadata")
    if isinstance(meta, dict):
        info = meta.get("kernelspec") or meta.get("language_info") or {}
        if isinstance(info, dict) and isinstance(info.get("language"), str):
            language = info["language"].lower()
    tree = _annotate(doc, [0])
    lines = LineIndex.of(raw)

    def segment(label: str, kind: str, value: Any, lang: str = language) -> Segment | None:
        pieces = value if isinstance(value, list) else [value]
        parts: list[str] = []
        starts: list[int] = []
        raw_lines: list[int] = []
        pos = 0
        for piece in pieces:
            if not isinstance(piece, _Str):
                continue
            starts.append(pos)
            raw_lines.append(lines.line(offsets[piece.index]) if piece.index < len(offsets) else 1)
            text = _ANSI.sub("", piece.value) if kind == "output" else piece.value
            parts.append(text)
            pos += len(text)
        if not parts:
            return None
        return Segment(label, kind, "".join(parts), tuple(starts), tuple(raw_lines), lang)

    for n, cell in enumerate(tree["cells"], start=1):
        if not isinstance(cell, dict):
            raise FormatError(f"cell {n} is not an object")
        ctype = cell.get("cell_type")
        kind = ctype.value if isinstance(ctype, _Str) else "raw"
        src = segment(f"cell {n}", kind if kind in ("code", "markdown") else "raw", cell.get("source"))
        if src is not None:
            yield src
        outputs = cell.get("outputs")
        if not isinstance(outputs, list):
            continue
        for k, out in enumerate(outputs, start=1):
            if not isinstance(out, dict):
                continue
            label = f"cell {n} output {k}"
            for value in _output_texts(out):
                seg = segment(label, "output", value, "text")
                if seg is not None:
                    yield seg


def _output_texts(out: dict[str, Any]) -> Iterator[Any]:
    if "text" in out:
        yield out["text"]
    data = out.get("data")
    if isinstance(data, dict):
        for mime in TEXT_MIMES:
            if mime in data:
                yield data[mime]
    if "traceback" in out:
        yield out["traceback"]
    if "evalue" in out:
        yield out["evalue"]


_MAGIC = re.compile(r"^\s*(?:[%!?]|\w+\s*=\s*!)")


def code_without_magics(text: str) -> str | None:
    """Python source of a code cell with IPython magics blanked (same line numbers), or None for %% cells."""
    first = text.lstrip().split("\n", 1)[0]
    if first.startswith("%%") and not first.startswith(("%%time", "%%capture")):
        return None  # %%bash, %%sql...: not Python
    out = []
    for line in text.split("\n"):
        out.append("" if _MAGIC.match(line) or line.lstrip().startswith("%%") else line)
    return "\n".join(out)
