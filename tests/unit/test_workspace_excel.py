"""Excel workbooks (``.xlsx``, extra ``excel``): sniffed by content, every sheet classified column by
column with masked examples, look-alike columns left alone, rows bounded, broken workbooks reported
as "could not decide", and a missing backend reported as skipped (a problem with ``strict``)."""

from __future__ import annotations

import io
import struct
import sys
import zipfile
from pathlib import Path

import pytest

import bastion
from bastion.core import ProblemKind
from bastion.scanners.workspace import datasets, scan

openpyxl = pytest.importorskip("openpyxl")


def _workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
    wb.save(path)
    return path


def _customers(n: int) -> list[list[object]]:
    rows: list[list[object]] = [["customer_id", "email", "iban", "sha", "revenue"]]
    for i in range(n):
        rows.append([10_000 + i, f"anna.{i}@wp.pl", "DE89370400440532013000", f"{i:040x}", 12.5 * i])
    return rows


def test_every_sheet_is_classified_with_masked_examples(tmp_path: Path) -> None:
    p = _workbook(
        tmp_path / "crm_export.xlsx",
        {"Customers": _customers(30), "Notes": [["owner", "comment"], ["Jan Kowalski", "call back"]]},
    )
    report = bastion.scan(p, families=["workspace"])
    got = {(f.rule_id, f.member) for f in report.findings}
    assert got == {
        ("BAS-P001", "sheet Customers, column email"),
        ("BAS-P004", "sheet Customers, column iban"),
    }
    text = " ".join(f.message for f in report.findings)
    assert "anna.0@wp.pl" not in text and "DE89370400440532013000" not in text  # masked
    (entry,) = report.scanned
    assert entry.format == "dataset:xlsx"


def test_default_scan_reads_a_workbook_as_a_dataset_not_only_as_a_zip(tmp_path: Path) -> None:
    p = _workbook(tmp_path / "crm_export.xlsx", {"Customers": _customers(30)})
    report = bastion.scan(p)  # both families, chosen automatically
    assert {f.rule_id for f in report.findings} == {"BAS-P001", "BAS-P004"}
    assert not report.problems


def test_sniffed_by_content_not_by_name(tmp_path: Path) -> None:
    p = _workbook(tmp_path / "export.dat", {"S": _customers(10)})
    assert {f.rule_id for f in bastion.scan(p, families=["workspace"]).findings} == {"BAS-P001", "BAS-P004"}
    plain_zip = tmp_path / "not_a_workbook.xlsx"
    with zipfile.ZipFile(plain_zip, "w") as zf:
        zf.writestr("data.csv", "email\n" + "".join(f"a{i}@wp.pl\n" for i in range(10)))
    assert not datasets.looks_like_xlsx(memoryview(plain_zip.read_bytes()))


def test_rows_are_bounded_across_sheets(tmp_path: Path) -> None:
    buf = io.BytesIO()
    _workbook(tmp_path / "big.xlsx", {"A": _customers(50), "B": _customers(50)})
    buf.write((tmp_path / "big.xlsx").read_bytes())
    sheets, truncated = datasets.read_xlsx(memoryview(buf.getvalue()), max_rows=60)
    assert truncated and sum(len(t.rows) for _, t in sheets) == 60
    assert sheets[0][1].rows[0][0] == 2  # row numbers as Excel shows them (row 1 is the header)


def test_broken_workbook_is_could_not_decide(tmp_path: Path) -> None:
    good = _workbook(tmp_path / "good.xlsx", {"S": _customers(5)}).read_bytes()
    broken = tmp_path / "broken.xlsx"
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(broken, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, data[: len(data) // 3] if item.filename.startswith("xl/worksheets") else data)
    report = bastion.scan(broken, families=["workspace"])
    assert report.findings == ()
    assert [p.kind for p in report.problems] == [ProblemKind.MALFORMED]


def test_missing_backend_is_skipped_or_strict_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = _workbook(tmp_path / "d.xlsx", {"S": _customers(5)})
    monkeypatch.setitem(sys.modules, "openpyxl", None)  # import fails as when the extra is missing
    report = bastion.scan(p, families=["workspace"])
    assert report.findings == () and "excel" in report.skipped[0].reason
    strict = bastion.scan(p, families=["workspace"], strict=True)
    assert [pr.kind for pr in strict.problems] == [ProblemKind.UNSUPPORTED]
    assert scan  # the module under test is importable without openpyxl


def _zip64_end(data: bytes, comment: bytes) -> bytes:
    """The same zip with the Zip64 end records that torch writes between the central directory and
    the end record, and a comment after it."""
    e = data.rindex(b"PK\x05\x06")
    _, _, _, _, count, cd_size, cd_offset, _ = struct.unpack("<4sHHHHIIH", data[e : e + 22])
    zip64 = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, cd_size, cd_offset)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, e, 1)
    end = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, cd_size, cd_offset, len(comment))
    return data[:e] + zip64 + locator + end + comment


def test_workbook_found_by_its_central_directory_with_zip64_records(tmp_path: Path) -> None:
    """The default scan reads a zip's names from its central directory to tell a workbook: with
    the Zip64 records before the end record and the workbook entry listed first, it is still one."""
    src = _workbook(tmp_path / "src.xlsx", {"Customers": _customers(30)})
    buf = io.BytesIO()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zout:
        names = sorted(zin.namelist(), key=lambda n: n != "xl/workbook.xml")
        assert names[0] == "xl/workbook.xml"
        for name in names:
            zout.writestr(name, zin.read(name))
    p = tmp_path / "export.xlsx"
    p.write_bytes(_zip64_end(buf.getvalue(), b"exported by a tool that writes comments"))
    with zipfile.ZipFile(p) as z:  # a valid zip for the standard library too
        assert z.namelist()[0] == "xl/workbook.xml"
    report = bastion.scan(p)
    assert {f.rule_id for f in report.findings} == {"BAS-P001", "BAS-P004"}
    assert not report.problems
