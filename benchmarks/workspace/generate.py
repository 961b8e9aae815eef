"""Generate a realistic ML project tree with planted findings, look-alike decoys and a ground truth.

    python benchmarks/workspace/generate.py OUT [--mb 200] [--seed 1]

Writes OUT/project/... and OUT/truth.json: a list of ``{file, line, category, where, kind}`` entries
(``end_line`` for multi-line secrets, ``column`` for personal data). ``category`` is one of secret /
pii / unsafe_code / dockerfile / dependency; ``where`` refines it (secrets: code, notebook-cell,
notebook-output, config; unsafe code: py, notebook; pii, dockerfile and dependency: the kind).

The planted secrets are the shapes every secret scanner knows (provider tokens, AWS key pairs,
private key blocks, URLs with passwords, JWTs, connection strings, passwords assigned to names), in
the places they really leak: Python assignments and keyword arguments, multi-line strings, YAML /
JSON / TOML / ``.env`` configs, notebook cells and outputs (where the raw file holds them
JSON-escaped, inside printed dicts and JSON). The decoys are what real projects are full of and
must not be reported: documented example keys, templated values, environment lookups, UUIDs, hex
digests, git commit ids, lock-file hashes, base64 images and widget ids in notebook outputs,
interpreter hashes, URLs without passwords, tokenizer names, Luhn-invalid order numbers, version
strings, timestamps. Every value is random per seed.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64 = string.ascii_letters + string.digits + "+/"
URLSAFE = ALNUM + "-_"


class Gen:
    def __init__(self, root: Path, seed: int) -> None:
        self.root = root
        self.rng = random.Random(seed)
        self.truth: list[dict[str, Any]] = []

    def r(self, n: int, alphabet: str = ALNUM) -> str:
        return "".join(self.rng.choices(alphabet, k=n))

    def pick(self, options: list[str]) -> str:
        return self.rng.choice(options)

    # ------------------------------------------------------------------ secrets

    def jwt(self) -> str:
        def enc(obj: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

        payload = {"sub": self.r(10), "iat": self.rng.randrange(1_600_000_000, 1_800_000_000)}
        return f"{enc({'alg': 'HS256', 'typ': 'JWT'})}.{enc(payload)}.{self.r(43, URLSAFE)}"

    def password(self) -> str:
        return self.r(self.rng.randrange(12, 20)) + self.pick(["#", "!", "%", "$", "&"]) + self.r(3)

    def token(self) -> tuple[str, str]:
        """A provider token or key: (kind, value). Shapes as the providers issue them."""
        kind = self.pick(
            [
                "aws", "github", "github-fine", "gitlab", "hf", "openai", "anthropic", "slack",
                "slack-webhook", "stripe", "gcp", "jwt", "sendgrid", "npm",
            ]
        )  # fmt: skip
        value = {
            "aws": "AKIA" + self.r(16, string.ascii_uppercase + "234567"),
            "github": "ghp_" + self.r(36),
            "github-fine": "github_pat_" + self.r(22) + "_" + self.r(59),
            "gitlab": "glpat-" + self.r(20, URLSAFE),
            "hf": "hf_" + self.r(34, string.ascii_letters),
            "openai": "sk-proj-" + self.r(self.rng.randrange(48, 120), URLSAFE),
            "anthropic": "sk-ant-api03-" + self.r(93, URLSAFE) + "AA",
            "slack": "xoxb-" + self.r(11, string.digits) + "-" + self.r(13, string.digits) + "-" + self.r(24),
            "slack-webhook": "https://hooks.slack.com/services/T"
            + self.r(8, string.ascii_uppercase + string.digits)
            + "/B"
            + self.r(8, string.ascii_uppercase + string.digits)
            + "/"
            + self.r(24),
            "stripe": "sk_live_" + self.r(self.rng.choice([24, 99])),
            "gcp": "AIza" + self.r(35, URLSAFE),
            "jwt": self.jwt(),
            "sendgrid": "SG." + self.r(22, URLSAFE) + "." + self.r(43, URLSAFE),
            "npm": "npm_" + self.r(36),
        }[kind]
        return kind, value

    def db_url(self) -> str:
        scheme = self.pick(
            ["postgresql", "postgres", "mysql", "mongodb+srv", "redis", "amqp", "mssql+pyodbc"]
        )
        host = self.pick(
            [f"db-{self.r(4, HEX)}.internal", f"{self.r(6).lower()}.rds.amazonaws.com", "10.2.3.4"]
        )
        user = self.pick(["etl", "admin_ro", "svc_train", "ml"])
        return f"{scheme}://{user}:{self.password().replace('#', 'x').replace('%', 'y')}@{host}:5432/dw"

    def azure(self) -> str:
        return (
            f"DefaultEndpointsProtocol=https;AccountName=ml{self.r(6).lower()};"
            f"AccountKey={self.r(86, B64)}==;EndpointSuffix=core.windows.net"
        )

    def private_key(self) -> str:
        body = base64.b64encode(self.rng.randbytes(600)).decode()
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        return "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END RSA PRIVATE KEY-----"

    # ------------------------------------------------------------------ decoys

    def uuid(self) -> str:
        return f"{self.r(8, HEX)}-{self.r(4, HEX)}-4{self.r(3, HEX)}-a{self.r(3, HEX)}-{self.r(12, HEX)}"

    def decoy_line(self) -> str:
        return self.pick(
            [
                f'run_id = "{self.uuid()}"',
                f'checksum = "{self.r(64, HEX)}"',
                f'MODEL_SHA256 = "sha256:{self.r(64, HEX)}"',
                'aws_key = "AKIAIOSFODNN7EXAMPLE"',
                'aws_secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
                'password = os.environ["DB_PASSWORD"]',
                'api_key = os.getenv("OPENAI_API_KEY")',
                'api_key = "<your-api-key>"',
                'openai_key = "sk-proj-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"',
                f"commit = '{self.r(40, HEX)}'",
                'token = "${HF_TOKEN}"',
                'hf_token = os.environ.get("HF_TOKEN", "")',
                "max_tokens = 2048",
                'tokenizer = "bert-base-uncased"',
                f"request_id = 'req_{self.r(12, HEX)}'",
                'DB_URL = "postgresql://etl@db.internal:5432/dw"',
                'DB_URL = f"postgresql://{user}:{password}@{host}/dw"',
                'DSN = "postgresql://user:password@localhost:5432/test"',
                "model.eval()",
                "cfg = yaml.safe_load(open('cfg.yml'))",
                "state = torch.load(path, weights_only=True)",
                "cfg = yaml.load(fh, Loader=yaml.SafeLoader)",
                "subprocess.run(['git', 'rev-parse', 'HEAD'], check=True)",
                "value = ast.literal_eval(text)",
                "resp = requests.get('https://huggingface.co/api/models', timeout=10)",
                "data = pickle.dumps(obj)",
                "password_hash = bcrypt.hashpw(pw, bcrypt.gensalt())",
                f'image_b64 = "{base64.b64encode(self.rng.randbytes(48)).decode()}"',
                "secret_name = 'prod/db/password'",
                "token_type = 'Bearer'",
                "primary_key = 'customer_id'",
            ]
        )

    # ------------------------------------------------------------------ writing and truth

    def write(self, rel: str, text: str) -> None:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def mark(self, rel: str, needle: str, category: str, where: str, kind: str, nth: int = 0) -> None:
        """Record the raw line (and last line) of ``needle``; in a notebook the needle is JSON-escaped."""
        text = (self.root / rel).read_text()
        if rel.endswith(".ipynb"):
            needle = json.dumps(needle)[1:-1]
        pos = -1
        for _ in range(nth + 1):
            pos = text.index(needle, pos + 1)
        line = text.count("\n", 0, pos) + 1
        entry: dict[str, Any] = {
            "file": rel,
            "line": line,
            "category": category,
            "where": where,
            "kind": kind,
        }
        end = line + needle.count("\n")
        if end != line:
            entry["end_line"] = end
        self.truth.append(entry)

    # ------------------------------------------------------------------ files

    def code_secret(self) -> tuple[list[str], str, str]:
        """Lines of Python leaking one secret: (lines, needle, kind)."""
        shape = self.rng.random()
        if shape < 0.45:
            kind, value = self.token()
            name = self.pick(["API_KEY", "TOKEN", "HF_TOKEN", "SLACK", "KEY", "CLIENT_TOKEN", "SERVICE"])
            return [f'{name}_{self.r(3).upper()} = "{value}"'], value, kind
        if shape < 0.55:
            kind, value = self.token()
            call = self.pick(["OpenAI", "Client", "HfApi", "WebClient", "Session"])
            return [f"client = {call}(api_key='{value}', timeout=30)"], value, kind
        if shape < 0.65:
            key_id = "AKIA" + self.r(16, string.ascii_uppercase + "234567")
            secret = self.r(40, B64)
            return (
                [
                    "s3 = boto3.client(",
                    '    "s3",',
                    f'    aws_access_key_id="{key_id}",',
                    f'    aws_secret_access_key="{secret}",',
                    ")",
                ],
                key_id,
                "aws-pair",
            )
        if shape < 0.75:
            url = self.db_url()
            return [f'engine = create_engine("{url}")'], url, "url"
        if shape < 0.85:
            pw = self.password()
            name = self.pick(["db_password", "DB_PASS", "smtp_password", "redis_pwd", "ADMIN_PASSWORD"])
            return [f'{name} = "{pw}"'], pw, "password"
        if shape < 0.92:
            key = self.private_key()
            return ['SIGNING_KEY = """' + key + '"""'], key, "private-key"
        conn = self.azure()
        return [f'AZURE_CONN = "{conn}"'], conn.split("AccountKey=")[1].split(";")[0], "azure"

    def python_file(self, rel: str) -> None:
        lines = [
            "import os",
            "import ast",
            "import yaml",
            "import torch",
            "import pickle",
            "import requests",
            "",
        ]
        plants: list[tuple[str, str, str, str]] = []
        extra_aws: list[str] = []
        for _ in range(self.rng.randrange(30, 80)):
            roll = self.rng.random()
            if roll < 0.035:
                new, needle, kind = self.code_secret()
                lines += new
                plants.append((needle, "secret", "code", kind))
                if kind == "aws-pair":
                    extra_aws.append(new[3].split('"')[1])
                continue
            if roll < 0.075:
                kind, line = self.unsafe_call()
                line += f"  # {self.r(6)}"
                plants.append((line, "unsafe_code", "py", kind))
            elif roll < 0.35:
                line = self.decoy_line()
            else:
                line = f"x_{self.r(5)} = compute({self.rng.randrange(1000)}, '{self.r(8)}')"
            lines.append(line)
        self.write(rel, "\n".join(lines) + "\n")
        for needle, cat, where, kind in plants:
            self.mark(rel, needle, cat, where, kind)
        for secret in extra_aws:
            self.mark(rel, secret, "secret", "code", "aws-secret")

    def unsafe_call(self) -> tuple[str, str]:
        return self.rng.choice(
            [
                ("pickle", "obj = pickle.load(open(path, 'rb'))"),
                ("torch-load", "state = torch.load(path)"),
                ("yaml-load", "cfg = yaml.load(open(path))"),
                ("tls", "requests.get(url, verify=False)"),
                ("remote-code", "model = AutoModel.from_pretrained(name, trust_remote_code=True)"),
                ("eval", "result = eval(expression)"),
                ("shell", "subprocess.run(cmd, shell=True)"),
                ("numpy-pickle", "arr = np.load(path, allow_pickle=True)"),
                ("joblib", "clf = joblib.load('model.joblib')"),
            ]
        )

    def notebook(self, rel: str) -> None:
        cells: list[dict[str, Any]] = []
        plants: list[tuple[str, str, str, str]] = []
        for n in range(self.rng.randrange(6, 14)):
            src = [f"x{n} = {self.rng.randrange(100)}\n", self.decoy_line() + "\n"]
            outputs: list[dict[str, Any]] = []
            roll = self.rng.random()
            if roll < 0.12:
                kind, value = self.token()
                src.append(self.pick([f"key = '{value}'\n", f'os.environ["API_TOKEN"] = "{value}"\n']))
                plants.append((value, "secret", "notebook-cell", kind))
            elif roll < 0.17:
                url = self.db_url()
                src.append(f'conn = psycopg2.connect("{url}")\n')
                plants.append((url, "secret", "notebook-cell", "url"))
            elif roll < 0.2:
                pw = self.password()
                src.append(f'db_password = "{pw}"\n')
                plants.append((pw, "secret", "notebook-cell", "password"))
            elif roll < 0.3:
                kind, value = self.token()
                shown = self.pick(
                    [
                        f"connecting with {value}",
                        json.dumps({"api_key": value, "region": "eu-west-1"}),
                        f"{{'token': '{value}', 'expires': 3600}}",
                        f"Authorization: Bearer {value}",
                    ]
                )
                outputs.append({"output_type": "stream", "name": "stdout", "text": [shown + "\n"]})
                plants.append((value, "secret", "notebook-output", kind))
            elif roll < 0.34:
                pw = self.password()
                shown = json.dumps({"user": "etl", "password": pw})
                outputs.append(
                    {"output_type": "execute_result", "execution_count": n, "metadata": {},
                     "data": {"text/plain": [shown]}}
                )  # fmt: skip
                plants.append((pw, "secret", "notebook-output", "password"))
            elif roll < 0.42:
                kind, call = self.unsafe_call()
                call = f"{call}  # {self.r(6)}"
                src.append(call + "\n")
                plants.append((call, "unsafe_code", "notebook", kind))
            if self.rng.random() < 0.4:
                png = base64.b64encode(self.rng.randbytes(self.rng.randrange(2000, 30000))).decode()
                outputs.append(
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {"image/png": png, "text/plain": ["<Figure size 640x480 with 1 Axes>"]},
                    }
                )
            if self.rng.random() < 0.2:
                outputs.append(
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {
                            "application/vnd.jupyter.widget-view+json": {
                                "model_id": self.r(32, HEX),
                                "version_major": 2,
                                "version_minor": 0,
                            },
                            "text/plain": [
                                f"HBox(children=(FloatProgress(value=0.0, max={self.rng.randrange(9999)}.0)))"
                            ],
                        },
                    }
                )
            if self.rng.random() < 0.15:
                outputs.append(
                    {
                        "output_type": "stream",
                        "name": "stderr",
                        "text": [
                            f"Downloading: 100%|#####| 440M/440M [00:{self.rng.randrange(10, 59)}<00:00]\n",
                            f"run id: {self.uuid()}  commit: {self.r(40, HEX)}\n",
                        ],
                    }
                )
            cells.append(
                {"cell_type": "code", "execution_count": n, "metadata": {}, "source": src, "outputs": outputs}
            )
        nb = {
            "cells": cells,
            "metadata": {
                "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                "interpreter": {"hash": self.r(64, HEX)},
                "vscode": {"interpreter": {"hash": self.r(64, HEX)}},
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        self.write(rel, json.dumps(nb, indent=1))
        for needle, cat, where, kind in plants:
            self.mark(rel, needle, cat, where, kind)

    def yaml_config(self, rel: str) -> None:
        lines = [
            "service:",
            f"  name: svc-{self.r(5).lower()}",
            "  password: ${SERVICE_PASSWORD}",
            "  api_key: '{{ vault_api_key }}'",
            "  database_url: postgresql://reader@db.internal:5432/dw",
        ]
        plant: tuple[str, str] | None = None
        roll = self.rng.random()
        if roll < 0.2:
            kind, value = self.token()
            lines.append(f"  api_token: {value}")
            plant = (value, kind)
        elif roll < 0.3:
            value = self.db_url()
            lines.append(f'  connection: "{value}"')
            plant = (value, "url")
        elif roll < 0.4:
            value = self.password()
            lines.append(f"  db_password: '{value}'")
            plant = (value, "password")
        elif roll < 0.45:
            value = self.r(40, B64)
            lines += ["aws:", "  region: eu-west-1", f"  aws_secret_access_key: {value}"]
            plant = (value, "aws-secret")
        lines += [f"  sha256: {self.r(64, HEX)}", f"  run: {self.uuid()}", f"  commit: {self.r(40, HEX)}"]
        self.write(rel, "\n".join(lines) + "\n")
        if plant:
            self.mark(rel, plant[0], "secret", "config", plant[1])

    def json_config(self, rel: str) -> None:
        cfg: dict[str, Any] = {
            "model": {"name": "bert-base-uncased", "revision": self.r(40, HEX), "max_tokens": 512},
            "tracking": {"run_id": self.uuid(), "token": "${MLFLOW_TOKEN}"},
        }
        plant: tuple[str, str] | None = None
        roll = self.rng.random()
        if roll < 0.15:
            kind, value = self.token()
            cfg["tracking"]["api_key"] = value
            plant = (value, kind)
        elif roll < 0.22:
            key = self.private_key()
            cfg = {
                "type": "service_account",
                "project_id": f"ml-{self.r(6).lower()}",
                "private_key_id": self.r(40, HEX),
                "private_key": key + "\n",
                "client_email": f"trainer@ml-{self.r(6).lower()}.iam.gserviceaccount.com",
                "client_id": self.r(21, string.digits),
            }
            plant = ("-----BEGIN RSA PRIVATE KEY-----", "gcp-service-account")
        self.write(rel, json.dumps(cfg, indent=2))
        if plant:
            self.mark(rel, plant[0], "secret", "config", plant[1])

    def env_file(self, rel: str) -> None:
        lines = [
            "# local settings",
            "DEBUG=false",
            f"RUN_ID={self.uuid()}",
            "OPENAI_API_KEY=",
            "HF_TOKEN=changeme",
        ]
        plants: list[tuple[str, str]] = []
        for _ in range(self.rng.randrange(1, 3)):
            kind, value = self.token()
            name = self.pick(["OPENAI_API_KEY", "HF_TOKEN", "GITHUB_TOKEN", "STRIPE_KEY", "SENDGRID_API_KEY"])
            lines.append(f"{name}={value}")
            plants.append((value, kind))
        pw = self.password()
        lines.append(f'POSTGRES_PASSWORD="{pw}"')
        plants.append((pw, "password"))
        self.write(rel, "\n".join(lines) + "\n")
        for value, kind in plants:
            self.mark(rel, value, "secret", "config", kind)

    def toml_config(self, rel: str) -> None:
        lines = [
            "[training]",
            "epochs = 10",
            "lr = 3e-4",
            f'seed_hash = "{self.r(64, HEX)}"',
            "",
            "[storage]",
        ]
        plant = None
        if self.rng.random() < 0.5:
            url = self.db_url()
            lines.append(f'url = "{url}"')
            plant = url
        else:
            lines.append('url = "s3://ml-datasets/train/"')
        self.write(rel, "\n".join(lines) + "\n")
        if plant:
            self.mark(rel, plant, "secret", "config", "url")

    def shell_history(self, rel: str) -> None:
        """A shell history: exported keys, a bearer token on a curl line, a password on a command line."""
        lines = ["ls -la", "git status", "python train.py --epochs 3", "export CUDA_VISIBLE_DEVICES=0"]
        plants: list[tuple[str, str]] = []
        kind, value = self.token()
        lines.append(f"export {self.pick(['HF_TOKEN', 'OPENAI_API_KEY', 'GH_TOKEN'])}={value}")
        plants.append((value, kind))
        kind, value = self.token()
        lines.append(f'curl -H "Authorization: Bearer {value}" https://api.internal/v1/models')
        plants.append((value, kind))
        url = self.db_url()
        lines.append(f"psql '{url}' -c 'select 1'")
        plants.append((url, "url"))
        lines += ["nvidia-smi", f"git checkout {self.r(40, HEX)}", "echo $HF_TOKEN"]
        self.rng.shuffle(lines)
        self.write(rel, "\n".join(lines) + "\n")
        for value, kind in plants:
            self.mark(rel, value, "secret", "config", kind)

    def credentials_files(self, rel_dir: str) -> None:
        """Tool credential files: Kaggle's kaggle.json, a .pypirc, a .netrc (W&B writes one)."""
        plants: list[tuple[str, str, str]] = []
        key = self.r(32, HEX)
        self.write(f"{rel_dir}/kaggle.json", json.dumps({"username": f"ds{self.r(5).lower()}", "key": key}))
        plants.append((f"{rel_dir}/kaggle.json", key, "kaggle"))
        token = "pypi-AgEIcHlwaS5vcmc" + self.r(70, URLSAFE)
        self.write(
            f"{rel_dir}/.pypirc",
            f"[distutils]\nindex-servers = pypi\n\n[pypi]\nusername = __token__\npassword = {token}\n",
        )
        plants.append((f"{rel_dir}/.pypirc", token, "pypi"))
        wandb = self.r(40, HEX)
        self.write(f"{rel_dir}/.netrc", f"machine api.wandb.ai\n  login user\n  password {wandb}\n")
        plants.append((f"{rel_dir}/.netrc", wandb, "wandb"))
        for rel, value, kind in plants:
            self.mark(rel, value, "secret", "config", kind)

    # ------------------------------------------------------------------ datasets

    def ssn(self) -> str:
        while True:
            area = self.rng.randrange(1, 900)
            if area != 666:
                return f"{area:03d}-{self.rng.randrange(1, 100):02d}-{self.rng.randrange(1, 10000):04d}"

    def dataset(self, rel: str, rows: int) -> None:
        first = [
            "Anna",
            "Jan",
            "Marie",
            "Piotr",
            "Lena",
            "Tomas",
            "Eva",
            "Karl",
            "Sofia",
            "Luca",
            "John",
            "Mary",
        ]
        last = [
            "Kowalska",
            "Nowak",
            "Dubois",
            "Meyer",
            "Novak",
            "Schmidt",
            "Rossi",
            "Berg",
            "Smith",
            "Garcia",
        ]
        streets = ["Main St", "Oak Avenue", "Hauptstrasse", "Rue de Rivoli", "Elm Street", "Baker Street"]
        n = self.rng.randrange
        domains = ["mail.eu", "gmx.de", "wp.pl"]
        cols: dict[str, tuple[str, Callable[[int], str]]] = {
            "customer_id": ("", lambda i: str(n(10**9, 10**10))),
            "full_name": ("person-name", lambda i: f"{self.pick(first)} {self.pick(last)}"),
            "email": ("email", lambda i: f"{self.pick(first).lower()}.{i}@{self.pick(domains)}"),
            "phone": ("phone", lambda i: f"+49 {n(150, 179)} {n(1000000, 9999999)}"),
            "card": ("payment-card", lambda i: self.luhn("4", 16)),
            "iban": ("iban", lambda i: self.iban("DE", self.r(18, string.digits))),
            "ssn": ("national-id", lambda i: self.ssn()),
            "last_login_ip": ("ip-address", lambda i: f"{n(1, 223)}.{n(256)}.{n(256)}.{n(1, 255)}"),
            "date_of_birth": ("date-of-birth", lambda i: f"{n(1940, 2005)}-{n(1, 13):02d}-{n(1, 29):02d}"),
            "street_address": ("postal-address", lambda i: f"{n(1, 300)} {self.pick(streets)}"),
            # decoys: ids, digests, versions, timestamps, scores, Luhn-invalid 16-digit order numbers
            "order_no": ("", lambda i: self.not_luhn("5", 16)),
            "created_at": ("", lambda i: f"2023-0{n(1, 9)}-1{n(9)}T12:{n(10, 59)}:00Z"),
            "model_version": ("", lambda i: f"{n(1, 4)}.{n(20)}.{n(9)}"),
            "score": ("", lambda i: f"{self.rng.random():.4f}"),
            "sha": ("", lambda i: self.r(40, HEX)),
            "session": ("", lambda i: self.uuid()),
            "label": ("", lambda i: self.pick(["churn", "stay", "upsell"])),
        }
        chosen = ["customer_id", *self.rng.sample(list(cols)[1:], self.rng.randrange(6, len(cols) - 1))]
        out = [",".join(chosen)]
        for i in range(rows):
            out.append(",".join(cols[c][1](i) for c in chosen))
        self.write(rel, "\n".join(out) + "\n")
        for c in chosen:
            if cols[c][0]:
                self.truth.append(
                    {
                        "file": rel,
                        "line": None,
                        "category": "pii",
                        "where": cols[c][0],
                        "kind": cols[c][0],
                        "column": c,
                    }
                )

    def not_luhn(self, prefix: str, length: int) -> str:
        card = self.luhn(prefix, length)
        return card[:-1] + str((int(card[-1]) + 1) % 10)

    # ------------------------------------------------------------------ dependencies and images

    def requirements(self, rel: str) -> None:
        lines = ["# training requirements", f"numpy=={self.rng.randrange(1, 2)}.26.{self.rng.randrange(5)}"]
        plants: list[tuple[str, str]] = []
        pool = [
            ("pandas", "unpinned"),
            ("torch>=2.0", "unpinned"),
            ("scikit-learn~=1.3", "unpinned"),
            ("transformers", "unpinned"),
            ("--extra-index-url http://pypi.internal.example/simple", "index"),
            ("--trusted-host pypi.internal", "index"),
            ("mylib @ git+https://github.com/acme/mylib@main", "direct-url"),
        ]
        for line, kind in self.rng.sample(pool, self.rng.randrange(1, 4)):
            lines.append(line)
            plants.append((line, kind))
        lines += ["requests==2.32.3", f"tqdm==4.66.{self.rng.randrange(5)}  # progress bars", "pyyaml==6.0.2"]
        self.rng.shuffle(lines)
        self.write(rel, "\n".join(lines) + "\n")
        for line, kind in plants:
            self.mark(rel, line, "dependency", kind, kind)

    def dockerfile(self, rel: str) -> None:
        digest = "sha256:" + self.r(64, HEX)
        if self.rng.random() < 0.5:
            text = (
                f"FROM python:3.11-slim@{digest}\nCOPY requirements.txt /app/\n"
                "RUN pip install --no-cache-dir --require-hashes -r /app/requirements.txt\n"
                "COPY . /app\nUSER 10001\nHEALTHCHECK CMD python -c 'import sys'\n"
                'ENTRYPOINT ["python", "/app/serve.py"]\n'
            )
            self.write(rel, text)
            return
        lines = ["FROM python:3.11"]
        plants = [("FROM python:3.11", "unpinned-base")]
        if self.rng.random() < 0.6:
            lines.append("RUN curl -fsSL https://get.tool.sh | sh")
            plants.append(("curl -fsSL", "pipe-to-shell"))
        if self.rng.random() < 0.4:
            lines.append("ADD https://example.org/model.tar.gz /models/")
            plants.append(("ADD https://", "add-url"))
        if self.rng.random() < 0.4:
            pw = self.password().replace("$", "x")
            lines.append(f"ENV DB_PASSWORD={pw}")
            plants.append(("ENV DB_PASSWORD", "secret-env"))
        if self.rng.random() < 0.5:
            lines.append("RUN pip install torch transformers")
            plants.append(("RUN pip install torch", "pip-unpinned"))
        lines += ["COPY . /app", 'CMD ["python", "/app/serve.py"]']
        self.write(rel, "\n".join(lines) + "\n")
        for needle, kind in plants:
            self.mark(rel, needle, "dockerfile", kind, kind)
            if kind == "secret-env":  # a password in an image layer is a leaked secret as well
                self.mark(rel, needle, "secret", "config", "password")
        self.truth.append({"file": rel, "line": 1, "category": "dockerfile", "where": "root", "kind": "root"})

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
    g.write(".gitignore", "__pycache__/\n*.pyc\n")
    budget = int(args.mb * 1024 * 1024)
    i = 0
    size = 0
    while size < budget:
        g.python_file(f"src/pkg{i % 20}/mod_{i}.py")
        g.notebook(f"notebooks/exp_{i}.ipynb")
        g.yaml_config(f"configs/svc_{i}.yaml")
        if i % 3 == 0:
            g.json_config(f"configs/run_{i}.json")
        if i % 7 == 0:
            g.toml_config(f"configs/train_{i}.toml")
        if i % 10 == 0:
            g.dataset(f"data/customers_{i}.csv", rows=g.rng.randrange(200, 3000))
        if i % 15 == 0:
            g.env_file(f"services/s{i}/.env")
            g.requirements(f"services/s{i}/requirements.txt")
            g.shell_history(f"services/s{i}/.bash_history")
            g.credentials_files(f"services/s{i}/home")
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
