"""The column prefilter (shape regexes run once over a whole column) is only a speed-up: on any table
it must classify exactly as checking every value with every validator, so it can never hide personal
data. Compared against that direct reference on random tables of realistic and hostile values."""

from __future__ import annotations

import random
import string

import pytest

from bastion.scanners.workspace import pii


def _reference(header: list[str], rows: list[tuple[int | None, list[str]]]) -> list[pii.ColumnHit]:
    checks = [pii._column_checks(h) for h in header]
    non_empty = [0] * len(header)
    counts: dict[tuple[int, str], int] = {}
    first: dict[tuple[int, str], tuple[int | None, str]] = {}
    text_counts: dict[tuple[int, str], int] = {}
    for line, values in rows:
        for i, raw in enumerate(values[: len(header)]):
            v = raw.strip()
            if not v:
                continue
            non_empty[i] += 1
            hit = next((r for r, check in checks[i] if check(v)), None)
            if hit is not None:
                key = (i, hit.rule_id)
                counts[key] = counts.get(key, 0) + 1
                first.setdefault(key, (line, pii.mask_value(hit.kind, v)))
            elif len(v) > 12 and (" " in v or "," in v):
                for th in pii.find_pii_text(v):
                    key = (i, th.rule.rule_id)
                    text_counts[key] = text_counts.get(key, 0) + 1
                    first.setdefault(key, (line, th.masked))
    rules = {r.rule_id: r for cs in checks for r, _ in cs} | {r.rule_id: r for r, _ in pii._TEXT_CHECKS}
    hits = []
    for (i, rid), n in sorted(counts.items()):
        if n >= max(1, pii.COLUMN_THRESHOLD * non_empty[i]):
            hits.append(
                pii.ColumnHit(header[i], rules[rid], n, non_empty[i], first[(i, rid)][1], first[(i, rid)][0])
            )
    for (i, rid), n in sorted(text_counts.items()):
        if not any(h.column == header[i] and h.rule.rule_id == rid for h in hits):
            hits.append(
                pii.ColumnHit(header[i], rules[rid], n, non_empty[i], first[(i, rid)][1], first[(i, rid)][0])
            )
    return hits


VALUES = [
    "anna.kowalska@wp.pl", "user@example.com", "4556737586899855", "4556 7375 8689 9855", "4111111111111111",
    "DE89370400440532013000", "DE89 3704 0044 0532 0130 00", "123-45-6789", "AB 12 34 56 C", "44051401359",
    "12345678Z", "X1234567L", "185052A12345678", "1 85 05 2A 123 456 78", "-12345678-Z", "81.2.69.142",
    "127.0.0.1", "01.2.3.4", "2001:db8::1", "fe80::1", "+48 601 234 567", "0048601234567", "(22) 123-45-67",
    "8472910356", "1985-02-03", "03/02/1985", "12 Main St", "Jan Kowalski", "Marie-Claire Dubois",
    "call 4556737586899855 or mail a.b@corp.io", "3.2.1", "0.1234", "churn", "", "  ", "a\nb",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
]  # fmt: skip
HEADERS = ["phone", "full_name", "dob", "street_address", "ssn", "email", "col", "notes"]


@pytest.mark.parametrize("seed", range(40))
def test_prefilter_classifies_exactly_like_checking_every_value(seed: int) -> None:
    rng = random.Random(seed)
    header = [rng.choice(HEADERS) for _ in range(rng.randrange(1, 5))]
    rows: list[tuple[int | None, list[str]]] = []
    bias = [rng.choice(VALUES) for _ in header]  # columns dominated by one kind, as real data is
    for n in range(rng.randrange(1, 60)):
        values = []
        for i in range(len(header) + rng.choice([-1, 0, 0, 1])):
            roll = rng.random()
            if roll < 0.6 and i < len(bias):
                values.append(bias[i])
            elif roll < 0.9:
                values.append(rng.choice(VALUES))
            else:
                values.append("".join(rng.choices(string.printable, k=rng.randrange(25))))
        rows.append((n + 2, values))
    assert pii.classify_columns(header, rows) == _reference(header, rows)
