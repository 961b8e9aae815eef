"""Text helpers shared by the workspace scanners: decoding, line mapping, masking, entropy, placeholders.

Nothing here ever returns a secret or a personal value unmasked: :func:`mask` is the only way a
matched value reaches a message.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import Counter
from dataclasses import dataclass

MAX_SCAN_LINE = 1 << 20  # longer lines are scanned in windows of this size (with overlap)


def decode(data: bytes) -> str | None:
    """The text of ``data`` (UTF-8, UTF-8 with BOM or UTF-16 with BOM), or None when it is not text."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    # Mostly text with a few stray bytes (latin-1 comments, a cut multi-byte char): keep positions.
    text = data.decode("utf-8", errors="replace")
    if text.count("\ufffd") > max(8, len(text) // 100):
        return None
    return text


@dataclass(frozen=True)
class LineIndex:
    """Maps character offsets in a text to 1-based line numbers."""

    starts: tuple[int, ...]

    @classmethod
    def of(cls, text: str) -> LineIndex:
        starts = [0]
        find = text.find
        pos = find("\n")
        while pos >= 0:
            starts.append(pos + 1)
            pos = find("\n", pos + 1)
        return cls(tuple(starts))

    def line(self, offset: int) -> int:
        return bisect.bisect_right(self.starts, offset)

    def line_text(self, text: str, line: int) -> str:
        start = self.starts[line - 1]
        end = self.starts[line] - 1 if line < len(self.starts) else len(text)
        return text[start:end]


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def char_classes(value: str) -> int:
    return sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(not c.isalnum() for c in value),
        )
    )


_PLACEHOLDER_WORDS = (
    "example",
    "sample",
    "dummy",
    "fake",
    "placeholder",
    "your",
    "xxxx",
    "changeme",
    "change_me",
    "redacted",
    "replace",
    "insert",
    "todo",
    "fixme",
    "foobar",
    "secret_here",
    "key_here",
    "notreal",
    "not_a_real",
    "lorem",
    "mysecret",
    "mypassword",
    "password123",
)
_TEMPLATE = re.compile(r"\$\{|\$\(|\{\{|\}\}|%\(|^\$[A-Za-z_]|^<.*>$|^\[.*\]$|\*\*\*|\.\.\.|…")
_SEQUENCES = ("0123456789", "1234567890", "abcdefghij", "abcdef0123", "qwerty")


def is_placeholder(value: str) -> bool:
    """True for values that only stand in for a secret: templates, masks, examples, repeated characters."""
    low = value.lower()
    if any(w in low for w in _PLACEHOLDER_WORDS):
        return True
    if _TEMPLATE.search(value):
        return True
    if any(s in low for s in _SEQUENCES):
        return True
    counts = Counter(low)
    return len(value) >= 6 and counts.most_common(1)[0][1] >= len(value) * 0.5


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_HEX = re.compile(r"^(?:sha\d*[:-])?[0-9a-f]+$", re.I)


def is_uuid(value: str) -> bool:
    return bool(_UUID.match(value))


def is_hash_like(value: str) -> bool:
    """A hex digest (MD5, SHA-1, SHA-256, SHA-512, git object ids) rather than a credential."""
    return bool(_HEX.match(value)) and len(value.split(":")[-1].split("-")[-1]) in (32, 40, 56, 64, 96, 128)


def mask(value: str, keep_prefix: int = 0) -> str:
    """A masked rendering: a public prefix, at most 2 characters at each end, the length; never the value."""
    prefix = value[:keep_prefix]
    rest = value[keep_prefix:]
    shown = rest[:2] if len(rest) >= 16 else ""
    tail = rest[-2:] if len(rest) >= 24 else ""
    return f"{prefix}{shown}{'*' * 6}{tail} ({len(value)} chars)"


def windows(text: str, size: int = MAX_SCAN_LINE, overlap: int = 4096) -> list[tuple[int, str]]:
    """Split a text into overlapping windows so regexes never run over unbounded input at once."""
    if len(text) <= size:
        return [(0, text)]
    out = []
    start = 0
    while start < len(text):
        out.append((start, text[start : start + size + overlap]))
        start += size
    return out
