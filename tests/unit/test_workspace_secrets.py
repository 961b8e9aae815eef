"""Secrets: every planted credential is found and masked; look-alikes (examples, placeholders, UUIDs,
digests, templates, random ids) are not reported."""

from __future__ import annotations

import base64
import json
import random
import string

import pytest

from bastion.scanners.workspace.secrets import find_secrets
from bastion.scanners.workspace.text import mask

RNG = random.Random(1234)
ALNUM = string.ascii_letters + string.digits


def _r(n: int, alphabet: str = ALNUM) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


def _jwt() -> str:
    def enc(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{enc({'alg': 'HS256', 'typ': 'JWT'})}.{enc({'sub': _r(12), 'iat': 1700000000})}.{_r(43)}"


PLANTED = [
    ("BAS-S001", "AKIA" + _r(16, string.ascii_uppercase + "234567"), 'aws_id = "{}"'),
    ("BAS-S002", "ghp_" + _r(36), "token: {}"),
    ("BAS-S002", "github_pat_" + _r(22) + "_" + _r(59), "GH={}"),
    ("BAS-S003", "glpat-" + _r(20), "gitlab = '{}'"),
    ("BAS-S004", "xoxb-" + _r(11, string.digits) + "-" + _r(24), "slack = '{}'"),
    ("BAS-S005", "sk_live_" + _r(24), "stripe.api_key = '{}'"),
    ("BAS-S006", "hf_" + _r(34, string.ascii_letters), "login(token='{}')"),
    ("BAS-S007", "sk-proj-" + _r(48), "client = OpenAI(api_key='{}')"),
    ("BAS-S007", "sk-ant-api03-" + _r(93), "x = '{}'"),
    ("BAS-S008", _r(86) + "==", "conn = 'DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={};'"),
    ("BAS-S009", "AIza" + _r(35), "maps_key = '{}'"),
    ("BAS-S011", _r(14), "DB = 'postgresql://etl:{}@db.prod.internal:5432/warehouse'"),
    ("BAS-S011", _r(12), "broker_url = 'amqp://worker:{}@rabbit:5672//'"),
    ("BAS-S012", _jwt(), "Authorization: Bearer {}"),
    ("BAS-S013", _r(10) + "!", 'DB_PASSWORD = "{}"'),
    ("BAS-S013", _r(40), "aws_secret_access_key={}"),
    ("BAS-S013", _r(32, "0123456789abcdef"), '"api_key": "{}"'),
]

DECOYS = [
    'aws = "AKIAIOSFODNN7EXAMPLE"',
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    'token = "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"',
    'password = "${DB_PASSWORD}"',
    "password: {{ vault_password }}",
    'password = os.environ["DB_PASSWORD"]',
    "password = get_password()",
    'password = "<your-password-here>"',
    'api_key = "YOUR_API_KEY"',
    'secret = "changeme"',
    'password = "********"',
    "url = 'postgresql://user:password@localhost:5432/db'",
    "url = 'postgresql://postgres:postgres@localhost/db'",
    "url = 'postgresql://app:${PGPASSWORD}@db/app'",
    'run_id = "123e4567-e89b-12d3-a456-426614174000"',
    'sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"',
    'token_hash = "da39a3ee5e6b4b0d3255bfef95601890afd80709"',
    "commit = 4b825dc642cb6eb9a060e54bf8d69288fbee4904",
    "max_tokens = 4096",
    'tokenizer = "bert-base-uncased"',
    'secret_name = "prod/db/credentials"',
    'token_path = "/var/run/secrets/kubernetes.io/serviceaccount/token"',
    "self.api_key = settings.API_KEY",
    "key = '-----BEGIN PRIVATE KEY-----\\n...\\n-----END PRIVATE KEY-----'",
    "eyJhbGciOi.notajwt.x",
    "hf_token = 'hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh'",
    "customer_id = 8472910356",
    "request_id = 'req_8f3a9c2e7b1d'",
]


@pytest.mark.parametrize(
    ("rule_id", "secret", "template"), PLANTED, ids=[f"{p[0]}-{i}" for i, p in enumerate(PLANTED)]
)
def test_planted_secret_is_found_and_masked(rule_id: str, secret: str, template: str) -> None:
    text = "x = 1\n" + template.format(secret) + "\n"
    hits = find_secrets(text)
    assert [h.rule.rule_id for h in hits] == [rule_id], hits
    hit = hits[0]
    assert secret not in hit.message
    assert secret[4:-2] not in hit.message
    assert text[hit.start : hit.end] in secret or secret in text[hit.start : hit.end]


@pytest.mark.parametrize("line", DECOYS)
def test_decoy_is_not_reported(line: str) -> None:
    assert find_secrets(line + "\n") == []


def test_private_key_block_plain_and_json_escaped() -> None:
    body = base64.b64encode(RNG.randbytes(600)).decode()
    pem = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    pem += "\n-----END RSA PRIVATE KEY-----\n"
    assert [h.rule.rule_id for h in find_secrets(pem)] == ["BAS-S010"]
    sa = json.dumps({"type": "service_account", "private_key": pem.replace("RSA ", "")})
    hits = find_secrets(sa)
    assert [h.rule.rule_id for h in hits] == ["BAS-S010"]
    assert body[:20] not in hits[0].message


def test_stripe_test_keys_are_low() -> None:
    (hit,) = find_secrets("stripe_key = 'sk_test_" + _r(24) + "'")
    assert hit.severity.value == "low"


def test_bare_assignments_in_code_are_not_values() -> None:
    assert find_secrets("password = compute_password_from_vault", code=True) == []
    assert find_secrets("PASSWORD=Zq8mR2vLp9xW\n", code=False)


def test_mask_never_reveals_short_values() -> None:
    assert "hunter2" not in mask("hunter2!")
    assert mask("abcdefghijklmnopqrstuvwxyz0123").count("*") == 6


def test_giant_line_is_bounded() -> None:
    text = "data = '" + "A" * 2_000_000 + "'\n"
    assert find_secrets(text) == []
