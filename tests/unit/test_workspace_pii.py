"""Personal data: check digits are verified, columns are classified with counts and masked examples,
and look-alike columns (random ids, digests, versions, reserved-domain emails, test cards) are not."""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

import pytest

import bastion
from bastion.scanners.workspace import pii

RNG = random.Random(5)


def _luhn(prefix: str, length: int) -> str:
    body = prefix + "".join(RNG.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for d in string.digits:
        if pii._luhn(body + d):
            return body + d
    raise AssertionError


def _iban(country: str, bban: str) -> str:
    check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
    return f"{country}{check:02d}{bban}"


def _pesel() -> str:
    yy, mm, dd = RNG.randrange(50, 99), RNG.randrange(1, 12), RNG.randrange(1, 28)
    base = f"{yy}{mm:02d}{dd:02d}{RNG.randrange(10000):04d}"
    w = (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)
    return base + str((10 - sum(int(a) * b for a, b in zip(base, w, strict=True)) % 10) % 10)


def test_validators() -> None:
    assert pii.is_card(_luhn("4", 16)) and pii.is_card(_luhn("51", 16)) and pii.is_card(_luhn("37", 15))
    assert not pii.is_card("4111111111111111")  # documented test card
    assert not pii.is_card(_luhn("9", 16))  # no issuer starts with 9
    assert pii.is_iban("DE89 3704 0044 0532 0130 00") and pii.is_iban("GB82WEST12345698765432")
    assert not pii.is_iban("DE89370400440532013001")
    assert pii.is_national_id("123-45-6789") and not pii.is_national_id("000-12-3456")
    assert pii.is_national_id(_pesel()) and pii.is_national_id("12345678Z")  # DNI letter
    assert pii.is_national_id("X1234567L") and not pii.is_national_id("12345678A")
    assert pii.is_national_id("AB123456C") and not pii.is_national_id("GB123456C")  # NINO
    assert pii.is_email("a.b@company.eu") and not pii.is_email("user@example.com")
    assert pii.is_phone("+48 601 234 567") and not pii.is_phone("8472910356")
    assert pii.is_phone("8472910356", hinted=True)
    assert pii.is_ip("81.2.69.142") and not pii.is_ip("127.0.0.1") and not pii.is_ip("1.2.3.400")
    assert pii.is_birth_date("1984-03-12") and not pii.is_birth_date("1850-01-01")


def _csv(tmp_path: Path, header: list[str], rows: list[list[str]], name: str = "data.csv") -> Path:
    p = tmp_path / name
    p.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    return p


def _rows(n: int) -> list[list[str]]:
    out = []
    for i in range(n):
        out.append(
            [
                str(RNG.randrange(10**9, 10**10)),  # random id (decoy)
                f"Anna Nowak{'' if i % 2 else 'owa'}",
                f"anna.{i}@poczta.pl",
                f"+48 60{RNG.randrange(10)} {RNG.randrange(100, 999)} {RNG.randrange(100, 999)}",
                _luhn("4", 16),
                _iban("PL", "".join(RNG.choice(string.digits) for _ in range(24))),
                _pesel(),
                f"10.{RNG.randrange(256)}.{RNG.randrange(256)}.{RNG.randrange(1, 255)}",
                f"19{RNG.randrange(40, 99)}-0{RNG.randrange(1, 9)}-1{RNG.randrange(0, 9)}",
                f"ul. Długa {RNG.randrange(1, 99)}",
                "".join(RNG.choice("0123456789abcdef") for _ in range(64)),  # digest (decoy)
                f"{RNG.randrange(3)}.{RNG.randrange(20)}.{RNG.randrange(9)}",  # version (decoy)
                f"user{i}@example.com",  # reserved domain (decoy)
                "4242424242424242",  # documented test card (decoy)
                "".join(RNG.choice(string.ascii_letters) for _ in range(12)),  # random token-ish id (decoy)
            ]
        )
    return out


HEADER = [
    "customer_id", "full_name", "email", "phone", "card", "iban", "pesel", "ip", "birth_date", "address",
    "model_sha", "version", "test_email", "test_card", "ref",
]  # fmt: skip


def test_columns_are_classified_and_decoys_are_not(tmp_path: Path) -> None:
    report = bastion.scan(_csv(tmp_path, HEADER, _rows(60)), families=["workspace"])
    got = {(f.member, f.rule_id) for f in report.findings}
    assert got == {
        ("column full_name", "BAS-P008"),
        ("column email", "BAS-P001"),
        ("column phone", "BAS-P002"),
        ("column card", "BAS-P003"),
        ("column iban", "BAS-P004"),
        ("column pesel", "BAS-P005"),
        ("column ip", "BAS-P006"),
        ("column birth_date", "BAS-P007"),
        ("column address", "BAS-P009"),
    }
    email = next(f for f in report.findings if f.rule_id == "BAS-P001")
    assert email.count == 60 and email.line == 2 and "60/60" in email.message
    assert "@poczta.pl" not in email.message and "a***@p***.pl" in email.message
    assert report.scanned[0].format == "dataset:csv"


def test_no_raw_value_in_any_message(tmp_path: Path) -> None:
    rows = _rows(5)
    report = bastion.scan(_csv(tmp_path, HEADER, rows), families=["workspace"])
    for f in report.findings:
        for row in rows:
            for value in row[1:10]:
                assert value not in f.message, (f.rule_id, value)


def test_sampling_is_bounded(tmp_path: Path) -> None:
    from bastion.scanners.workspace.config import WorkspaceConfig

    p = _csv(tmp_path, HEADER, _rows(300))
    report = bastion.scan(p, families=["workspace"], workspace_config=WorkspaceConfig(max_dataset_rows=50))
    assert dict(report.scanned[0].extras)["rows_sampled"] == "50"
    assert dict(report.scanned[0].extras)["sampled"] == "head"
    assert next(f for f in report.findings if f.rule_id == "BAS-P001").count == 50


def test_free_text_column_mentions(tmp_path: Path) -> None:
    rows = [
        [str(i), f"call me or mail j.doe{i}@firma.de please" if i % 5 == 0 else "no contact"]
        for i in range(50)
    ]
    report = bastion.scan(_csv(tmp_path, ["id", "notes"], rows), families=["workspace"])
    (f,) = report.findings
    assert (f.rule_id, f.member, f.count) == ("BAS-P001", "column notes", 10)


def test_tsv_and_jsonl(tmp_path: Path) -> None:
    tsv = tmp_path / "x.tsv"
    tsv.write_text("name\temail\n" + "".join(f"Jan Kowalski\tjan{i}@wp.pl\n" for i in range(10)))
    assert {f.rule_id for f in bastion.scan(tsv, families=["workspace"]).findings} == {"BAS-P001", "BAS-P008"}
    jl = tmp_path / "events.jsonl"
    jl.write_text("".join(json.dumps({"user": {"email": f"u{i}@corp.io"}, "n": i}) + "\n" for i in range(10)))
    (f,) = bastion.scan(jl, families=["workspace"]).findings
    assert (f.rule_id, f.member) == ("BAS-P001", "column user.email")


def test_parquet_when_pyarrow_is_installed(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table({"email": [f"a{i}@corp.io" for i in range(20)], "score": list(range(20))})
    p = tmp_path / "d.parquet"
    pq.write_table(table, p)
    report = bastion.scan(p, families=["workspace"])
    assert [f.rule_id for f in report.findings] == ["BAS-P001"]
    assert report.scanned[0].format == "dataset:parquet"


@pytest.mark.parametrize(
    "content",
    [
        b'a,b\n"unterminated,1\n' + b"x" * 300_000 + b"\n",  # field larger than the csv limit
        b"\xff\xfe\x00\xd8garbage",
        b"a,b\n1,2\n\x00\x00\x00",
    ],
)
def test_bad_datasets_never_crash(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "bad.csv"
    p.write_bytes(content)
    report = bastion.scan(p, families=["workspace"])
    assert report.findings == ()
    assert report.problems or report.skipped or report.scanned
