"""Generate a realistic ML project tree with planted findings, look-alike decoys and a ground truth.

    python benchmarks/workspace/generate.py OUT [--mb 200] [--seed 1]

Writes OUT/project/... and OUT/truth.json: a list of {file, line, category, where} entries, where
``category`` is one of secret / pii / unsafe_code / dockerfile / dependency and ``where`` refines it
(code, notebook-cell, notebook-output, config; pii kinds). Secrets are random per run (seeded).
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import string
from pathlib import Path
from typing import Any

ALNUM = string.ascii_letters + string.digits


class Gen:
    def __init__(self, root: Path, seed: int) -> None:
        self.root = root
        self.rng = random.Random(seed)
        self.truth: list[dict[str, Any]] = []

    def r(self, n: int, alphabet: str = ALNUM) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def secret(self) -> tuple[str, str]:
        """A planted secret: (kind, value as it appears in a line of code)."""
        kind = self.rng.choice(["aws", "github", "hf", "openai", "slack", "stripe", "url", "password", "gcp"])
        value = {
            "aws": "AKIA" + self.r(16, string.ascii_uppercase + "234567"),
            "github": "ghp_" + self.r(36),
            "hf": "hf_" + self.r(34, string.ascii_letters),
            "openai": "sk-proj-" + self.r(48),
            "slack": "xoxb-" + self.r(11, string.digits) + "-" + self.r(24),
            "stripe": "sk_live_" + self.r(24),
            "url": f"postgresql://etl:{self.r(16)}@db-{self.r(4).lower()}.internal:5432/dw",
            "password": self.r(14) + "#",
            "gcp": "AIza" + self.r(35),
        }[kind]
        return kind, value

    def uuid(self) -> str:
        h = "0123456789abcdef"
        return f"{self.r(8, h)}-{self.r(4, h)}-4{self.r(3, h)}-a{self.r(3, h)}-{self.r(12, h)}"

    def decoy_line(self) -> str:
        return self.rng.choice(
            [
                f'run_id = "{self.uuid()}"',
                f'checksum = "{self.r(64, "0123456789abcdef")}"',
                'aws_key = "AKIAIOSFODNN7EXAMPLE"',
                'password = os.environ["DB_PASSWORD"]',
                'api_key = "<your-api-key>"',
                f"commit = '{self.r(40, '0123456789abcdef')}'",
                'token = "${HF_TOKEN}"',
                "max_tokens = 2048",
                'tokenizer = "bert-base-uncased"',
                f"request_id = 'req_{self.r(12, 'abcdef0123456789')}'",
                "model.eval()",
                "cfg = yaml.safe_load(open('cfg.yml'))",
                "state = torch.load(path, weights_only=True)",
            ]
        )

    def write(self, rel: str, text: str) -> Path:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    def mark(self, rel: str, needle: str, category: str, where: str) -> None:
        text = (self.root / rel).read_text()
        pos = text.index(needle)
        self.truth.append(
            {"file": rel, "line": text.count("\n", 0, pos) + 1, "category": category, "where": where}
        )

    # ------------------------------------------------------------------ files

    def python_file(self, rel: str) -> None:
        lines = ["import os", "import yaml", "import torch", "import pickle", "import requests", ""]
        plants: list[tuple[str, str, str]] = []
        for _ in range(self.rng.randrange(30, 80)):
            roll = self.rng.random()
            if roll < 0.04:
                _, value = self.secret()
                line = f'SECRET_{self.r(4).upper()} = "{value}"'
                plants.append((line, "secret", "code"))
            elif roll < 0.08:
                line = (
                    self.rng.choice(
                        [
                            "obj = pickle.load(open(path, 'rb'))",
                            "state = torch.load(path)",
                            "cfg = yaml.load(open(path))",
                            "requests.get(url, verify=False)",
                            "model = AutoModel.from_pretrained(name, trust_remote_code=True)",
                        ]
                    )
                    + f"  # {self.r(6)}"
                )
                plants.append((line, "unsafe_code", "py"))
            elif roll < 0.3:
                line = self.decoy_line()
            else:
                line = f"x_{self.r(5)} = compute({self.rng.randrange(1000)}, '{self.r(8)}')"
            lines.append(line)
        self.write(rel, "\n".join(lines) + "\n")
        for needle, cat, where in plants:
            self.mark(rel, needle, cat, where)

    def notebook(self, rel: str) -> None:
        cells: list[dict[str, Any]] = []
        plants: list[tuple[str, str, str]] = []
        for n in range(self.rng.randrange(6, 14)):
            src = [f"x{n} = {self.rng.randrange(100)}\n", self.decoy_line() + "\n"]
            outputs: list[dict[str, Any]] = []
            roll = self.rng.random()
            if roll < 0.15:
                kind, value = self.secret()
                name = "db_password" if kind == "password" else "key"
                src.append(f"{name} = '{value}'\n")
                plants.append((value, "secret", "notebook-cell"))
            elif roll < 0.3:
                kind, value = self.secret()
                shown = f"{{'password': '{value}'}}" if kind == "password" else f"connecting with {value}"
                outputs.append({"output_type": "stream", "name": "stdout", "text": [shown + "\n"]})
                plants.append((value, "secret", "notebook-output"))
            elif roll < 0.4:
                call = f"model_{self.r(4)} = torch.load('ckpt.pt')"
                src.append(call + "\n")
                plants.append((call, "unsafe_code", "notebook"))
            if self.rng.random() < 0.4:
                png = base64.b64encode(self.rng.randbytes(self.rng.randrange(2000, 30000))).decode()
                outputs.append(
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {"image/png": png, "text/plain": ["<Figure>"]},
                    }
                )
            if self.rng.random() < 0.2:
                outputs.append(
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {
                            "application/vnd.jupyter.widget-view+json": {
                                "model_id": self.r(32, "0123456789abcdef"),
                                "version_major": 2,
                            }
                        },
                    }
                )
            cells.append(
                {"cell_type": "code", "execution_count": n, "metadata": {}, "source": src, "outputs": outputs}
            )
        nb = {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {"kernelspec": {"language": "python", "name": "python3"}},
            "cells": cells,
        }
        self.write(rel, json.dumps(nb, indent=1))
        for needle, cat, where in plants:
            self.mark(rel, needle, cat, where)

    def config(self, rel: str) -> None:
        lines = ["service:", f"  name: svc-{self.r(5).lower()}", "  password: ${SERVICE_PASSWORD}"]
        plant = None
        if self.rng.random() < 0.5:
            kind, value = self.secret()
            line = f"  connection: {value}" if kind == "url" else f"  api_token: {value}"
            line = f"  db_password: {value}" if kind == "password" else line
            plant = value
            lines.append(line)
        lines += [
            f"  sha256: {self.r(64, '0123456789abcdef')}",
            f"  run: {self.uuid()}",
        ]
        self.write(rel, "\n".join(lines) + "\n")
        if plant:
            self.mark(rel, plant, "secret", "config")

    def dataset(self, rel: str, rows: int) -> None:
        header = ["id", "full_name", "email", "phone", "card", "iban", "signup", "score", "sha"]
        first = ["Anna", "Jan", "Marie", "Piotr", "Lena", "Tomas", "Eva", "Karl", "Sofia", "Luca"]
        last = ["Kowalska", "Nowak", "Dubois", "Meyer", "Novak", "Schmidt", "Rossi", "Berg"]
        out = [",".join(header)]
        for i in range(rows):
            name = f"{self.rng.choice(first)} {self.rng.choice(last)}"
            card = self.luhn("4", 16)
            iban = self.iban("DE", self.r(18, string.digits))
            out.append(
                f"{self.rng.randrange(10**9, 10**10)},{name},{name.split()[0].lower()}.{i}@mail.eu,"
                f"+49 {self.rng.randrange(150, 179)} {self.rng.randrange(1000000, 9999999)},{card},{iban},"
                f"2023-0{self.rng.randrange(1, 9)}-1{self.rng.randrange(9)},{self.rng.random():.4f},"
                f"{self.r(40, '0123456789abcdef')}"
            )
        self.write(rel, "\n".join(out) + "\n")
        for col, kind in (
            ("full_name", "person-name"),
            ("email", "email"),
            ("phone", "phone"),
            ("card", "payment-card"),
            ("iban", "iban"),
        ):
            self.truth.append({"file": rel, "line": None, "category": "pii", "where": kind, "column": col})

    def dockerfile(self, rel: str) -> None:
        digest = "sha256:" + self.r(64, "0123456789abcdef")
        if self.rng.random() < 0.5:
            text = (
                f"FROM python:3.11-slim@{digest}\nCOPY . /app\n"
                "RUN pip install --require-hashes -r /app/requirements.txt\nUSER 10001\n"
            )
            self.write(rel, text)
        else:
            text = "FROM python:3.11\nRUN curl -fsSL https://get.tool.sh | sh\nCOPY . /app\n"
            self.write(rel, text)
            self.mark(rel, "FROM python:3.11", "dockerfile", "unpinned-base")
            self.mark(rel, "curl -fsSL", "dockerfile", "pipe-to-shell")
            self.truth.append({"file": rel, "line": 1, "category": "dockerfile", "where": "root"})

    def luhn(self, prefix: str, length: int) -> str:
        body = prefix + self.r(length - len(prefix) - 1, string.digits)
        for d in string.digits:
            digits = body + d
            total = 0
            for i, ch in enumerate(reversed(digits)):
                v = int(ch) * (2 if i % 2 else 1)
                total += v - 9 if v > 9 else v
            if total % 10 == 0 and digits not in ("4111111111111111", "4242424242424242"):
                return digits
        return self.luhn(prefix, length)

    def iban(self, country: str, bban: str) -> str:
        check = 98 - int("".join(str(int(c, 36)) for c in bban + country + "00")) % 97
        return f"{country}{check:02d}{bban}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("out", type=Path)
    ap.add_argument("--mb", type=float, default=200)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    root = args.out / "project"
    g = Gen(root, args.seed)
    budget = int(args.mb * 1024 * 1024)
    i = 0
    size = 0
    while size < budget:
        g.python_file(f"src/pkg{i % 20}/mod_{i}.py")
        g.notebook(f"notebooks/exp_{i}.ipynb")
        g.config(f"configs/svc_{i}.yaml")
        if i % 10 == 0:
            g.dataset(f"data/customers_{i}.csv", rows=g.rng.randrange(200, 3000))
        if i % 25 == 0:
            g.dockerfile(f"docker/svc{i}/Dockerfile")
        i += 1
        if i % 50 == 0:
            size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    (args.out / "truth.json").write_text(json.dumps(g.truth, indent=0))
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    print(f"{root}: {size / 1e6:.1f} MB, {len(g.truth)} planted findings")


if __name__ == "__main__":
    main()
