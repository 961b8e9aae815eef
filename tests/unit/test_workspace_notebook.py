"""Notebooks: hits in decoded cells and outputs map back to the raw line and to cell / line; base64
images, widget ids and kernel metadata are never reported; broken notebooks are 'could not decide'."""

from __future__ import annotations

import base64
import json
import random
import string
from pathlib import Path

import bastion
from bastion.scanners.workspace.notebook import code_without_magics, parse_notebook

RNG = random.Random(99)
KEY = "ghp_" + "".join(RNG.choice(string.ascii_letters + string.digits) for _ in range(36))


def _nb(cells: list[dict[str, object]]) -> dict[str, object]:
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"language": "python", "name": "python3"},
            "widgets": {"state": {"9f1c2e3d4b5a69788796a5b4c3d2e1f0": {"model_name": "x"}}},
        },
        "cells": cells,
    }


def _code(src: str, outputs: list[dict[str, object]] | None = None) -> dict[str, object]:
    return {
        "cell_type": "code",
        "execution_count": 1,
        "metadata": {"id": "a3f9c2e1"},
        "source": src.splitlines(keepends=True),
        "outputs": outputs or [],
    }


def _write(tmp_path: Path, nb: dict[str, object], name: str = "nb.ipynb") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(nb, indent=1))
    return p


def _raw_line_of(path: Path, needle: str) -> int:
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return n
    raise AssertionError(needle)


def test_secret_in_output_maps_to_raw_line_and_cell(tmp_path: Path) -> None:
    nb = _nb(
        [
            _code("import os\n"),
            _code(
                "x = 1\nprint(cfg)\n",
                [{"output_type": "stream", "name": "stdout", "text": ["ok\n", f"token={KEY}\n"]}],
            ),
        ]
    )
    p = _write(tmp_path, nb)
    report = bastion.scan(p, families=["workspace"])
    (f,) = report.findings
    assert f.rule_id == "BAS-S002"
    assert f.member == "cell 2 output 1, line 2"
    assert f.line == _raw_line_of(p, KEY)
    assert KEY not in f.message


def test_secret_in_code_cell_single_string_source(tmp_path: Path) -> None:
    cell = _code("")
    cell["source"] = f"import os\n\nTOKEN = '{KEY}'\n"  # nbformat allows one string
    p = _write(tmp_path, _nb([_code("a = 1\n"), cell]))
    (f,) = bastion.scan(p, families=["workspace"]).findings
    assert f.member == "cell 2, line 3"
    assert f.line == _raw_line_of(p, KEY)


def test_images_widgets_and_metadata_are_not_secrets(tmp_path: Path) -> None:
    weights = base64.b64encode(RNG.randbytes(20000)).decode()
    outputs: list[dict[str, object]] = [
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {"image/png": weights, "text/plain": ["<Figure>"]},
        },
        {
            "output_type": "display_data",
            "metadata": {},
            "data": {
                "application/vnd.jupyter.widget-view+json": {"model_id": "8d1f0a7e3c6b4e2a9f5d7c1b3e8a6f40"}
            },
        },
        {
            "output_type": "execute_result",
            "execution_count": 2,
            "metadata": {},
            "data": {"text/plain": ["tensor([0.1, 0.2])"]},
        },
    ]
    p = _write(tmp_path, _nb([_code("plt.show()\n", outputs)]))
    report = bastion.scan(p, families=["workspace"])
    assert report.findings == ()
    assert report.problems == ()
    assert [s.format for s in report.scanned] == ["workspace:notebook"]


def test_unsafe_code_across_cells_and_magics(tmp_path: Path) -> None:
    nb = _nb(
        [
            _code("!pip install torch\nimport pickle as pk\n%matplotlib inline\n"),
            _code("%%bash\nls -l\n"),
            _code("model.eval()\nobj = pk.load(open('m.pkl', 'rb'))\n"),
        ]
    )
    p = _write(tmp_path, nb)
    (f,) = bastion.scan(p, families=["workspace"]).findings
    assert (f.rule_id, f.member) == ("BAS-C001", "cell 3, line 2")
    assert f.line == _raw_line_of(p, "pk.load")


def test_pii_printed_in_an_output(tmp_path: Path) -> None:
    html = "<table><tr><td>jan.kowalski@poczta.pl</td><td>4556 7375 8689 9855</td></tr></table>"
    out = {
        "output_type": "execute_result",
        "execution_count": 1,
        "metadata": {},
        "data": {"text/html": [html]},
    }
    report = bastion.scan(_write(tmp_path, _nb([_code("df.head()\n", [out])])), families=["workspace"])
    assert sorted(f.rule_id for f in report.findings) == ["BAS-P001", "BAS-P003"]
    assert all("kowalski" not in f.message and "9855" not in f.message[:-4] for f in report.findings)


def test_malformed_notebook_is_undecided_but_still_scanned_for_secrets(tmp_path: Path) -> None:
    p = tmp_path / "broken.ipynb"
    p.write_text('{"cells": [{"cell_type": "code", "source": ["t = \'' + KEY + "'\"]")
    report = bastion.scan(p, families=["workspace"])
    assert report.problems and report.problems[0].kind.value == "malformed"
    assert [f.rule_id for f in report.findings] == ["BAS-S002"]


def test_cell_that_is_not_python_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    report = bastion.scan(_write(tmp_path, _nb([_code("def (:\n")])), families=["workspace"])
    assert "not valid Python" in report.problems[0].message


def test_parse_notebook_segments() -> None:
    raw = json.dumps(_nb([{"cell_type": "markdown", "metadata": {}, "source": ["# T\n", "text"]}]), indent=1)
    (seg,) = parse_notebook(raw)
    assert (seg.label, seg.kind, seg.text) == ("cell 1", "markdown", "# T\ntext")
    assert seg.raw_line(seg.text.index("text")) == seg.raw_lines[1]


def test_magics_are_blanked_keeping_lines() -> None:
    assert code_without_magics("%time x = 1\ny = 2\n") == "\ny = 2\n"
    assert code_without_magics("%%sql\nSELECT 1\n") is None
