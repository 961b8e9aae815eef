"""docs/rules.md is generated from the rule declarations; keep it in step with the code."""

from __future__ import annotations

import os
import re
from pathlib import Path

from bastion.scanners.catalog import all_rules, rules_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"


def test_rules_doc_is_current() -> None:
    expected = rules_markdown()
    if os.environ.get("BASTION_UPDATE_GOLDEN") == "1":
        DOC.write_text(expected)
    assert DOC.read_text() == expected, (
        "docs/rules.md is stale: run BASTION_UPDATE_GOLDEN=1 pytest tests/golden"
    )


def test_every_rule_is_documented_for_users() -> None:
    for r in all_rules():
        assert re.fullmatch(r"BAS-[MSPCDK]\d{3}", r.rule_id), r.rule_id
        assert r.title and r.remediation and len(r.remediation) > 20, r.rule_id
        assert r.atlas, r.rule_id
