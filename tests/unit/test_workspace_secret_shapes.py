"""Secret shapes added after the workspace benchmark showed them missing: registry and SaaS tokens
(npm, PyPI, SendGrid, Databricks), credential files recognised by their structure (Kaggle's
kaggle.json, ~/.netrc as written by ``wandb login``), ``*_PASS`` names, and AWS secret keys that start
with "/". Each with the look-alikes that must stay quiet."""

from __future__ import annotations

import json
import random
import string

import pytest

from bastion.scanners.workspace.secrets import find_secrets

RNG = random.Random(77)
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
URLSAFE = ALNUM + "-_"


def _r(n: int, alphabet: str = ALNUM) -> str:
    return "".join(RNG.choice(alphabet) for _ in range(n))


PLANTED = [
    ("BAS-S014", "npm_" + _r(36), "//registry.npmjs.org/:_authToken={}"),
    ("BAS-S014", "pypi-AgEIcHlwaS5vcmc" + _r(70, URLSAFE), "password = {}"),
    ("BAS-S014", "SG." + _r(22, URLSAFE) + "." + _r(43, URLSAFE), "SENDGRID = '{}'"),
    ("BAS-S014", "dapi" + _r(32, HEX), "DATABRICKS_TOKEN={}"),
    ("BAS-S014", _r(32, HEX), '{{"username": "ds_anna", "key": "{}"}}'),
    ("BAS-S014", _r(40, HEX), "machine api.wandb.ai\n  login user\n  password {}"),
    ("BAS-S014", _r(20), "machine github.com login anna password {}"),
    ("BAS-S013", _r(14) + "&" + _r(3), 'DB_PASS = "{}"'),
    ("BAS-S013", "/" + _r(39, ALNUM + "+/"), 'aws_secret_access_key="{}"'),
]

DECOYS = [
    "//registry.npmjs.org/:_authToken=${NPM_TOKEN}",
    "npm_config_cache = '/tmp/npm_cache_dir_for_builds_here'",
    "password = pypi-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    json.dumps({"username": "anna", "key": "value"}),
    json.dumps({"key": "0123456789abcdef0123456789abcdef", "type": "md5"}),
    "machine api.wandb.ai\n  login user\n  password ${WANDB_API_KEY}",
    "machine learning models need a password manager",  # prose, not a netrc entry
    'bypass = "cache"',
    'DB_PASS = os.environ["DB_PASS"]',
    'model_path = "/models/bert-base-uncased/pytorch_model.bin"',
    'secret_path = "/var/run/secrets/kubernetes.io/serviceaccount/token"',
]


@pytest.mark.parametrize(
    ("rule_id", "secret", "template"), PLANTED, ids=[p[0] + str(i) for i, p in enumerate(PLANTED)]
)
def test_planted_shape_is_found_and_masked(rule_id: str, secret: str, template: str) -> None:
    text = "x = 1\n" + template.format(secret) + "\n"
    hits = find_secrets(text)
    assert [h.rule.rule_id for h in hits] == [rule_id], hits
    assert secret not in hits[0].message and secret[4:-2] not in hits[0].message
    assert secret in text[hits[0].start : hits[0].end] or text[hits[0].start : hits[0].end] in secret


@pytest.mark.parametrize("text", DECOYS)
def test_look_alike_is_not_reported(text: str) -> None:
    assert find_secrets(text + "\n") == []
