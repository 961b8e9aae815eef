"""The demo's Train-stage check: write a small ML project with planted problems and look-alike decoys,
scan it, and show that every planted finding is reported and no decoy is.

Secrets are generated at run time from a seeded random source, so this file holds none.
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


@dataclass
class SampleWorkspace:
    root: Path
    planted: set[tuple[str, str]] = field(default_factory=set)  # (file, rule id) that must be reported
    decoy_files: set[str] = field(default_factory=set)  # files that must produce no finding at all


def _rand(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return body + str((10 - total % 10) % 10)


def _iban(country: str, bban: str) -> str:
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in moved)) % 97
    return f"{country}{check:02d}{bban}"


def _cell(kind: str, source: str, outputs: list[dict[str, object]] | None = None) -> dict[str, object]:
    lines = source.splitlines(keepends=True)
    cell: dict[str, object] = {"cell_type": kind, "metadata": {}, "source": lines}
    if kind == "code":
        cell["execution_count"] = 1
        cell["outputs"] = outputs or []
    return cell


def write_sample_workspace(root: Path, seed: int = 7) -> SampleWorkspace:
    """Write the sample project and return what a correct scan must report."""
    rng = random.Random(seed)  # noqa: S311 - sample data, not cryptography
    ws = SampleWorkspace(root)
    root.mkdir(parents=True, exist_ok=True)
    openai_key = "sk-proj-" + _rand(rng, 48)
    aws_id = "AKIA" + _rand(rng, 16, string.ascii_uppercase + "234567")
    db_password = _rand(rng, 14)

    png = base64.b64encode(bytes(rng.randrange(256) for _ in range(3000))).decode()
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}},
        "cells": [
            _cell("markdown", "# Churn model\nUse `AKIAIOSFODNN7EXAMPLE` style keys only in docs.\n"),
            _cell(
                "code",
                "import os\nimport torch\nkey = os.environ.get('OPENAI_API_KEY')\nprint(os.environ)\n",
                [
                    {
                        "output_type": "stream",
                        "name": "stdout",
                        "text": [f"environ({{'OPENAI_API_KEY': '{openai_key}'}})\n"],
                    }
                ],
            ),
            _cell(
                "code",
                "model = torch.load('checkpoints/model.pt')\nmodel.eval()\n",
                [
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {"image/png": png, "text/plain": ["<Figure>"]},
                    },
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {
                            "application/vnd.jupyter.widget-view+json": {
                                "model_id": "3f2b8c1e9a7d4e5f8a6b0c9d1e2f3a4b",
                                "version_major": 2,
                            }
                        },
                    },
                ],
            ),
        ],
    }
    (root / "notebooks").mkdir(exist_ok=True)
    (root / "notebooks" / "explore.ipynb").write_text(json.dumps(nb, indent=1))
    ws.planted |= {("notebooks/explore.ipynb", "BAS-S007"), ("notebooks/explore.ipynb", "BAS-C002")}

    (root / "train.py").write_text(
        "import yaml\nimport torch\n\n"
        "RUN_ID = '123e4567-e89b-12d3-a456-426614174000'\n"
        "CHECKSUM = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'\n"
        "# docs example: AKIAIOSFODNN7EXAMPLE\n"
        f"DATABASE_URL = 'postgresql://trainer:{db_password}@db.internal:5432/features'\n\n"
        "def load(path):\n"
        "    cfg = yaml.safe_load(open('config.yaml'))\n"
        "    return torch.load(path, weights_only=False), cfg\n"
    )
    ws.planted |= {("train.py", "BAS-S011"), ("train.py", "BAS-C002")}

    rows = ["customer_id,full_name,email,phone,card_number,iban,model_hash"]
    first = ["Anna", "Jan", "Marie", "Piotr", "Lena", "Tomas", "Eva", "Karl"]
    last = ["Kowalska", "Nowak", "Dubois", "Meyer", "Novak", "Schmidt", "Rossi", "Berg"]
    for i in range(40):
        name = f"{rng.choice(first)} {rng.choice(last)}"
        email = f"{name.split()[0].lower()}.{i}@mail-{rng.randrange(9)}.eu"
        phone = f"+48 {rng.randrange(500, 899)} {rng.randrange(100, 999)} {rng.randrange(100, 999)}"
        card = _luhn_complete("4", 16, rng)
        iban = _iban("DE", "".join(rng.choice(string.digits) for _ in range(18)))
        digest = _rand(rng, 64, "0123456789abcdef")
        rows.append(f"{rng.randrange(10**9, 10**10)},{name},{email},{phone},{card},{iban},{digest}")
    (root / "data").mkdir(exist_ok=True)
    (root / "data" / "customers.csv").write_text("\n".join(rows) + "\n")
    ws.planted |= {
        ("data/customers.csv", r) for r in ("BAS-P001", "BAS-P002", "BAS-P003", "BAS-P004", "BAS-P008")
    }

    (root / "Dockerfile").write_text(
        "FROM python:3.11\nCOPY . /app\nRUN pip install -r /app/requirements.txt\n"
        'CMD ["python", "/app/train.py"]\n'
    )
    ws.planted |= {("Dockerfile", "BAS-K001"), ("Dockerfile", "BAS-K003")}

    (root / "requirements.txt").write_text("torch==2.6.0\npyyaml==6.0.2\n")
    (root / "config.yaml").write_text(
        "database:\n  password: ${DB_PASSWORD}\n  user: trainer\n"
        "model:\n  sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
        f"  run: {rng.randrange(10**12)}\n"
    )
    (root / ".gitignore").write_text(".env\ncheckpoints/\n")
    (root / ".env").write_text(f"AWS_ACCESS_KEY_ID={aws_id}\n")  # ignored by git: not a leak
    ws.decoy_files |= {"config.yaml", "requirements.txt", ".env", ".gitignore"}
    return ws


def run_workspace_stage(console: Console, workdir: Path) -> bool:
    """Write the sample workspace under ``workdir``, scan it, print the findings; True when exact."""
    from bastion.render.text import render_text
    from bastion.scanners.engine import scan_paths

    ws = write_sample_workspace(workdir / "sample-workspace")
    report = scan_paths([ws.root], families=("workspace",), workers=1)
    render_text(report, console.file)  # type: ignore[arg-type]  # rich types its file as IO[str]
    found = {(f.file, f.rule_id) for f in report.findings}
    missed = ws.planted - found
    unexpected = {(f, r) for f, r in found - ws.planted}
    console.print(
        f"\nFound {len(ws.planted & found)}/{len(ws.planted)} planted problems, "
        f"{len(unexpected)} reports on decoys."
    )
    if missed or unexpected:
        console.print(
            "[bold red]workspace check failed[/bold red]: "
            f"missed={sorted(missed)} unexpected={sorted(unexpected)}"
        )
        return False
    console.print(
        "[green]Workspace defences behaved as expected.[/green] Fix: rotate the leaked keys and inject them "
        "at run time from a secrets store instead of code and notebooks."
    )
    return _secrets_fix(console, workdir)


def _secrets_fix(console: Console, workdir: Path) -> bool:
    """The fix for the leaked key: keep it in the encrypted store and inject it into one process."""
    import secrets as pysecrets
    import sys

    from bastion.secrets import SecretStore, run_with_secrets

    store = SecretStore(workdir / "secrets-home" / "secrets")
    passphrase = pysecrets.token_urlsafe(24)  # in real use: a prompt or BASTION_SECRETS_PASSPHRASE
    rotated = "demo-" + pysecrets.token_hex(16)  # stands in for the key issued after rotation
    store.set("HF_TOKEN", rotated, passphrase)
    console.print(
        "\n$ bastion secrets set HF_TOKEN --from-stdin\n"
        "$ bastion secrets run --only HF_TOKEN -- python train.py   # the notebook reads os.environ"
    )
    child = "import os; print('train.py sees HF_TOKEN:', len(os.environ['HF_TOKEN']), 'characters')"
    status = run_with_secrets(store, passphrase, [sys.executable, "-c", child], only=["HF_TOKEN"])
    audit = (store.root / "audit.jsonl").read_text(encoding="utf-8")
    leaked = rotated in audit
    console.print(
        f"child exit {status}; {len(audit.splitlines())} audited accesses, value in the audit log: {leaked}"
    )
    return status == 0 and not leaked
