"""Personal data in datasets and text: emails, phones, payment cards (Luhn), IBANs (mod-97), national ids
with check digits (US SSN ranges, Polish PESEL, French NIR, Spanish DNI/NIE, UK NINO), IP addresses,
dates of birth, and names / addresses where the column name says so.

Datasets are classified column by column on a bounded sample of rows: a column is reported once per
kind with the number of matching values and a *masked* example, never the value itself. Free text
(notebook outputs, logs) is searched for the kinds whose structure is checkable (email, card, IBAN,
SSN), so random ids, hashes and version strings are not reported.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bastion.core import Category, Severity
from bastion.scanners.interface import Rule, rule

_FIX = (
    "Remove or pseudonymise the column before it enters training data, or record a lawful basis and "
    "restrict access to the dataset (scoped, time-bounded grants)."
)


def _r(rid: str, kind: str, sev: Severity, title: str) -> Rule:
    return rule(rid, kind, sev, title, _FIX, atlas=("AML.M0007",), cwe=("CWE-359",), category=Category.PII)


EMAIL = _r("BAS-P001", "email", Severity.MEDIUM, "Email addresses")
PHONE = _r("BAS-P002", "phone", Severity.MEDIUM, "Phone numbers")
CARD = _r("BAS-P003", "payment-card", Severity.HIGH, "Payment card numbers (Luhn-valid, known issuer)")
IBAN = _r("BAS-P004", "iban", Severity.HIGH, "IBAN bank account numbers (mod-97 valid)")
NATIONAL_ID = _r("BAS-P005", "national-id", Severity.HIGH, "National identity numbers (check digits)")
IP = _r("BAS-P006", "ip-address", Severity.LOW, "IP addresses")
DOB = _r("BAS-P007", "date-of-birth", Severity.MEDIUM, "Dates of birth")
NAME = _r("BAS-P008", "person-name", Severity.MEDIUM, "Person names")
ADDRESS = _r("BAS-P009", "postal-address", Severity.MEDIUM, "Postal addresses")

# ---------------------------------------------------------------- validators (full-value matches)

_EMAIL = re.compile(
    r"^[A-Za-z0-9._%+-]{1,64}@(?P<domain>[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24})$"
)
_RESERVED_DOMAINS = (
    *("example.com", "example.org", "example.net", "test", "invalid", "localhost", "example"),
    *("internal", "local", "lan", "localdomain", "home.arpa"),  # private names: hosts, not mailboxes
)


def is_email(v: str) -> bool:
    if "@" not in v:
        return False
    m = _EMAIL.match(v)
    if not m:
        return False
    domain = m.group("domain").lower()
    return not any(domain == d or domain.endswith("." + d) for d in _RESERVED_DOMAINS)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_CARD_SHAPE = re.compile(r"^\d(?:[ -]?\d){12,18}$")
_TEST_CARDS = frozenset(
    {
        "4111111111111111",
        "4242424242424242",
        "4012888888881881",
        "5555555555554444",
        "5105105105105100",
        "378282246310005",
        "371449635398431",
        "6011111111111117",
        "4000056655665556",
        "3530111333300000",
    }
)


def is_card(v: str) -> bool:
    if len(v) < 13 or not v[0].isdigit() or not _CARD_SHAPE.match(v):
        return False
    d = v.replace(" ", "").replace("-", "")
    if d in _TEST_CARDS or len(set(d)) < 4 or not _luhn(d):
        return False
    n2, n4 = int(d[:2]), int(d[:4])
    ln = len(d)
    return (
        (d[0] == "4" and ln in (13, 16, 19))
        or ((51 <= n2 <= 55 or 2221 <= n4 <= 2720) and ln == 16)
        or (n2 in (34, 37) and ln == 15)
        or ((d.startswith(("6011", "65")) or 644 <= int(d[:3]) <= 649) and ln in (16, 19))
        or (3528 <= n4 <= 3589 and ln in (16, 19))
        or ((300 <= int(d[:3]) <= 305 or n2 in (36, 38)) and ln == 14)
    )


_IBAN_LEN = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20,
    "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IS": 26, "IT": 27,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25,
    "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26, "UA": 29, "AE": 23, "SA": 24, "BR": 29,
}  # fmt: skip
_IBAN_SHAPE = re.compile(r"^[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}$")


def is_iban(v: str) -> bool:
    if len(v) < 15 or not v[:2].isupper() or not _IBAN_SHAPE.match(v):
        return False
    s = v.replace(" ", "")
    if _IBAN_LEN.get(s[:2]) != len(s):
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


_SSN = re.compile(r"^(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}$")
_NINO = re.compile(
    r"^(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]$"
)
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _pesel(v: str) -> bool:
    if len(v) != 11 or not v.isdigit():
        return False
    w = (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)
    if (10 - sum(int(a) * b for a, b in zip(v, w, strict=False)) % 10) % 10 != int(v[10]):
        return False
    month, day = int(v[2:4]) % 20, int(v[4:6])
    return 1 <= month <= 12 and 1 <= day <= 31 and int(v[2:4]) < 93


def _nir(v: str) -> bool:
    s = v.replace(" ", "")
    if len(s) != 15 or s[0] not in "12":
        return False
    body = s[:13].replace("2A", "19").replace("2B", "18")
    if not body.isdigit() or not s[13:].isdigit() or not 1 <= int(s[3:5]) <= 12:
        return False
    return 97 - int(body) % 97 == int(s[13:])


def _dni(v: str) -> bool:
    s = v.upper().replace("-", "")
    if len(s) != 9:
        return False
    head = s[:8]
    if head[0] in "XYZ":
        head = str("XYZ".index(head[0])) + head[1:]
    return head.isdigit() and _DNI_LETTERS[int(head) % 23] == s[8]


def is_national_id(v: str) -> bool:
    if not 9 <= len(v) <= 21 or not v[0].isalnum():  # shortest (DNI) and longest (spaced NIR) forms
        return False
    return bool(_SSN.match(v)) or bool(_NINO.match(v)) or _pesel(v) or _nir(v) or _dni(v)


_PHONE = re.compile(r"^(?:\+|00)?[\d(][\d ().-]{6,20}\d$")
_DATEISH = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}$")


def is_phone(v: str, hinted: bool = False) -> bool:
    if len(v) < 8 or not _PHONE.match(v) or _DATEISH.match(v):
        return False
    digits = sum(map(str.isdigit, v))
    if not 8 <= digits <= 15:
        return False
    if v.startswith(("+", "00")) or any(c in v for c in " ()-"):
        return True
    return hinted  # bare digit strings are ids unless the column says phone


_OCTET = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}\Z", re.ASCII)  # as ipaddress parses it


def is_ip(v: str) -> bool:
    if ":" not in v:  # IPv4 without the ipaddress round trip: this runs on every cell of a dataset
        m = _IPV4.match(v)
        if m is None:
            return False
        first = int(m.group(1))
        return not (v in ("0.0.0.0", "255.255.255.255") or first == 127 or 224 <= first <= 239)  # noqa: S104 - compared, not bound
    if len(v) > 45:
        return False
    try:
        addr = ipaddress.ip_address(v)
    except ValueError:
        return False
    return not (
        addr.is_unspecified or addr.is_loopback or addr.is_multicast or str(addr) == "255.255.255.255"
    )


_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d.%m.%Y", "%Y/%m/%d", "%d-%m-%Y")


def is_birth_date(v: str) -> bool:
    v = v.strip()[:10]
    for fmt in _DATE_FORMATS:
        try:
            d = _dt.datetime.strptime(v, fmt).date()
        except ValueError:
            continue
        return 1900 <= d.year <= _dt.date.today().year
    return False


_PERSON = re.compile(r"^[A-ZÀ-Ý][a-zà-ÿ'’-]+(?: [A-ZÀ-Ý][a-zà-ÿ'’.-]+){0,3}$")


def is_person_name(v: str) -> bool:
    return bool(_PERSON.match(v)) and len(v) <= 60


def is_address(v: str) -> bool:
    return any(c.isdigit() for c in v) and sum(c.isalpha() for c in v) >= 4 and len(v) <= 200


# ---------------------------------------------------------------- masking


def mask_value(kind: str, v: str) -> str:
    """A masked example: enough to recognise the kind, never enough to identify anyone."""
    if kind == "email":
        local, _, domain = v.partition("@")
        return f"{local[:1]}***@{domain[:1]}***.{domain.rsplit('.', 1)[-1]}"
    if kind in ("payment-card", "iban", "national-id", "phone"):
        digits_shown = 4 if kind == "payment-card" else 2
        head = v[:2] if kind == "iban" else ""
        return head + "*" * max(len(v) - len(head) - digits_shown, 3) + v[-digits_shown:]
    if kind == "ip-address":
        return ".".join(v.split(".")[:2]) + ".*.*" if "." in v else v.split(":")[0] + ":*"
    if kind == "date-of-birth":
        return v[:2] + "**-**-**"
    if kind == "person-name":
        return " ".join(p[:1] + "***" for p in v.split())
    return f"*** ({len(v)} chars)"


# ---------------------------------------------------------------- columns

_NAME_COL = re.compile(
    r"^(?:(?:first|last|given|family|middle|full|customer|patient|person|contact|maiden|sur)[_ -]?)?"
    r"(?:name|surname|forename|nachname|vorname|nom|prenom|prénom|imie|nazwisko)$",
    re.IGNORECASE,
)
_ADDRESS_COL = re.compile(
    r"(?:^|_|\b)(?:address|street|addr|address_line\d?|adresse|ulica|strasse)(?:$|_|\b)", re.I
)
_DOB_COL = re.compile(
    r"(?:^|_|\b)(?:dob|birth|birthday|birthdate|date_of_birth|geburtsdatum|naissance)", re.I
)
_PHONE_COL = re.compile(r"phone|mobile|tel(?:$|_|ephone)|fax|msisdn", re.I)
_ID_COL = re.compile(r"ssn|pesel|nir|dni|nino|national|passport|social_security|insee|bsn|tax_?id", re.I)

Check = tuple[Rule, Callable[[str], bool]]
_VALUE_CHECKS: tuple[Check, ...] = (
    (EMAIL, is_email),
    (CARD, is_card),
    (IBAN, is_iban),
    (NATIONAL_ID, is_national_id),
    (IP, is_ip),
    (PHONE, is_phone),
)
_MEMO_SIZE = 4096  # distinct values remembered per column
COLUMN_THRESHOLD = 0.5  # share of non-empty sampled values that must match for a column to be classified


@dataclass
class ColumnHit:
    column: str
    rule: Rule
    count: int
    sampled: int
    example: str
    first_line: int | None


def _column_checks(name: str) -> list[Check]:
    checks = list(_VALUE_CHECKS)
    if _PHONE_COL.search(name):
        checks = [c for c in checks if c[0] is not PHONE] + [(PHONE, lambda v: is_phone(v, hinted=True))]
    if _DOB_COL.search(name):
        checks.append((DOB, is_birth_date))
    if _NAME_COL.match(name.strip()):
        checks.append((NAME, is_person_name))
    if _ADDRESS_COL.search(name):
        checks.append((ADDRESS, is_address))
    return checks


# A necessary condition on one value for each check (the validators' own shape regexes where they
# have one), searched for once in a whole column (its values joined by newlines): a check that no
# value can pass is not run on the column at all -- a name column never reaches the card check, an
# email column never reaches the date parser. (Collecting the matching lines to hand only those to
# the validators measured slower than this.)
_SHAPES: dict[str, re.Pattern[str]] = {
    EMAIL.rule_id: re.compile(_EMAIL.pattern, re.M),
    CARD.rule_id: re.compile(_CARD_SHAPE.pattern, re.M),
    IBAN.rule_id: re.compile(_IBAN_SHAPE.pattern, re.M),
    NATIONAL_ID.rule_id: re.compile(r"\d(?:[ -]*\d){5}"),  # every form has 6+ digits in a row
    IP.rule_id: re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$|:", re.M),
    PHONE.rule_id: re.compile(_PHONE.pattern, re.M),
    DOB.rule_id: re.compile(r"\d"),
    NAME.rule_id: re.compile(_PERSON.pattern, re.M),
    ADDRESS.rule_id: re.compile(r"\d"),
}


def _live_checks(checks: list[Check], blob: str, values: int) -> list[Check]:
    """The checks that some value of a column (``blob``: its ``values`` joined by newlines) may pass."""
    if blob.count("\n") != values - 1:  # a multi-line cell: lines are not values, drop nothing
        return checks
    return [
        (r, check) for r, check in checks if (shape := _SHAPES.get(r.rule_id)) is None or shape.search(blob)
    ]


def classify_columns(header: list[str], rows: Iterable[tuple[int | None, list[str]]]) -> list[ColumnHit]:
    """Column-level classification over sampled rows (``(line, values)``); free-text search inside cells."""
    rows = rows if isinstance(rows, list) else list(rows)
    checks = [_column_checks(h) for h in header]
    non_empty = [0] * len(header)
    counts: dict[tuple[int, str], int] = {}
    first: dict[tuple[int, str], tuple[int | None, str]] = {}
    text_counts: dict[tuple[int, str], int] = {}
    for i in range(len(header)):
        column = [(line, v) for line, values in rows if i < len(values) and (v := values[i].strip())]
        non_empty[i] = len(column)
        if not column:
            continue
        blob = "\n".join(v for _, v in column)
        live = _live_checks(checks[i], blob, len(column))
        free_text = " " in blob or "," in blob
        # the verdict for a value already seen in the column (labels, names, countries repeat a lot)
        memo: dict[str, Rule | None] = {}
        for line, v in column:
            if v in memo:
                hit = memo[v]
            else:
                hit = next((r for r, check in live if check(v)), None)
                if len(memo) < _MEMO_SIZE:
                    memo[v] = hit
            if hit is not None:
                key = (i, hit.rule_id)
                counts[key] = counts.get(key, 0) + 1
                if key not in first:
                    first[key] = (line, mask_value(hit.kind, v))
                continue
            if free_text and len(v) > 12 and (" " in v or "," in v):
                for th in find_pii_text(v):
                    key = (i, th.rule.rule_id)
                    text_counts[key] = text_counts.get(key, 0) + 1
                    first.setdefault(key, (line, th.masked))
    hits: list[ColumnHit] = []
    rules = {r.rule_id: r for cs in checks for r, _ in cs}
    rules.update({r.rule_id: r for r, _ in _TEXT_CHECKS})
    for (i, rid), n in sorted(counts.items()):
        if n >= max(1, COLUMN_THRESHOLD * non_empty[i]):
            line, example = first[(i, rid)]
            hits.append(ColumnHit(header[i], rules[rid], n, non_empty[i], example, line))
    for (i, rid), n in sorted(text_counts.items()):
        if not any(h.column == header[i] and h.rule.rule_id == rid for h in hits):
            line, example = first[(i, rid)]
            hits.append(ColumnHit(header[i], rules[rid], n, non_empty[i], example, line))
    return hits


# ---------------------------------------------------------------- free text


@dataclass(frozen=True)
class TextHit:
    rule: Rule
    start: int
    end: int
    masked: str


_TEXT_CANDIDATES = re.compile(
    r"(?<![\w.%+:/-])(?P<email>[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24})"
    r"|(?<![\w.-])(?P<card>\d(?:[ -]?\d){12,18})(?![\w.-])"
    r"|(?<![A-Za-z0-9])(?P<iban>[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30})(?![A-Za-z0-9])"
    r"|(?<![\w-])(?P<ssn>\d{3}-\d{2}-\d{4})(?![\w-])"
)
_TEXT_CHECKS: tuple[Check, ...] = (
    (EMAIL, is_email),
    (CARD, is_card),
    (IBAN, is_iban),
    (NATIONAL_ID, is_national_id),
)
_GROUP_RULE = {
    "email": (EMAIL, is_email),
    "card": (CARD, is_card),
    "iban": (IBAN, is_iban),
    "ssn": (NATIONAL_ID, is_national_id),
}


def find_pii_text(text: str) -> list[TextHit]:
    """Structurally checkable personal data in free text (email, card, IBAN, SSN)."""
    if "@" not in text and not any(c.isdigit() for c in text[:100_000]):
        return []
    hits = []
    for m in _TEXT_CANDIDATES.finditer(text):
        group = m.lastgroup
        if group is None:
            continue
        r, check = _GROUP_RULE[group]
        value = m.group(group)
        if check(value):
            hits.append(TextHit(r, m.start(group), m.end(group), mask_value(r.kind, value)))
    return hits
