"""Unsafe ML code on the syntax tree: every planted call is found, look-alikes are not."""

from __future__ import annotations

import pytest

from bastion.scanners.workspace.unsafe_code import check_python

PLANTED = [
    ("import pickle\npickle.load(f)", "BAS-C001"),
    ("import pickle as pk\npk.loads(b)", "BAS-C001"),
    ("from joblib import load\nload('m.joblib')", "BAS-C001"),
    ("import dill\ndill.load(f)", "BAS-C001"),
    ("import cloudpickle\ncloudpickle.loads(b)", "BAS-C001"),
    ("import pandas as pd\npd.read_pickle('x.pkl')", "BAS-C001"),
    ("import torch\ntorch.load('m.pt')", "BAS-C002"),
    ("import torch\ntorch.load('m.pt', weights_only=False)", "BAS-C002"),
    ("from torch import load\nload('m.pt')", "BAS-C002"),
    ("import numpy as np\nnp.load('a.npy', allow_pickle=True)", "BAS-C003"),
    ("import yaml\nyaml.load(open('c.yml'))", "BAS-C004"),
    ("import yaml\nyaml.load(s, Loader=yaml.Loader)", "BAS-C004"),
    ("import yaml\nyaml.unsafe_load(s)", "BAS-C004"),
    ("eval(user_input)", "BAS-C005"),
    ("exec(compile(src, 'x', 'exec'))", "BAS-C005"),
    ("AutoModel.from_pretrained('org/m', trust_remote_code=True)", "BAS-C006"),
    ("import torch\ntorch.hub.load('org/repo', 'model')", "BAS-C006"),
    ("import requests\nrequests.get('https://x', verify=False)", "BAS-C007"),
    ("import ssl\nctx = ssl._create_unverified_context()", "BAS-C007"),
    ("import ssl\nctx.verify_mode = ssl.CERT_NONE", "BAS-C007"),
    ("import subprocess\nsubprocess.run(cmd, shell=True)", "BAS-C008"),
    ("import os\nos.system('rm -rf ' + path)", "BAS-C008"),
    (
        "import urllib.request\nurllib.request.urlretrieve('http://models.example.org/w.bin', 'w.bin')",
        "BAS-C009",
    ),
    ("import requests\nrequests.get('http://10.0.0.5/model.pt')", "BAS-C009"),
    ("import psycopg2\npsycopg2.connect(host='db', password='Tr0ub4dor&3')", "BAS-C010"),
]

DECOYS = [
    "model.eval()",
    "df.eval('a + b')",
    "session.exec(stmt)",
    "x = eval('1 + 2')",
    "import torch\ntorch.load('m.pt', weights_only=True)",
    "import numpy as np\nnp.load('a.npy')",
    "import yaml\nyaml.safe_load(s)",
    "import yaml\nyaml.load(s, Loader=yaml.SafeLoader)",
    "import yaml\nyaml.load(s, yaml.CSafeLoader)",
    "AutoModel.from_pretrained('org/m', trust_remote_code=False)",
    "import requests\nrequests.get('https://x', verify='/etc/ssl/ca.pem')",
    "import requests\nrequests.get('http://localhost:8080/health')",
    "import subprocess\nsubprocess.run(['ls', '-l'])",
    "import os\nos.system('nvidia-smi')",
    "import psycopg2\npsycopg2.connect(password=os.environ['PGPASSWORD'])",
    "client = Client(token='${TOKEN}')",
    "self.load(path)",
    "def load(p):\n    return open(p).read()\nload('x')",
    "import json\njson.load(f)",
]


@pytest.mark.parametrize(("source", "rule_id"), PLANTED)
def test_planted_unsafe_call(source: str, rule_id: str) -> None:
    hits = check_python(source)
    assert [h.rule.rule_id for h in hits] == [rule_id]
    assert hits[0].line == source.count("\n") + 1


@pytest.mark.parametrize("source", DECOYS)
def test_decoy_is_not_reported(source: str) -> None:
    assert check_python(source) == []


def test_torch_load_default_is_medium_and_explicit_false_is_high() -> None:
    (default,) = check_python("import torch\ntorch.load('m.pt')")
    (explicit,) = check_python("import torch\ntorch.load('m.pt', weights_only=False)")
    assert default.severity is not None and default.severity.value == "medium"
    assert explicit.severity is None  # the rule's own severity: high


def test_syntax_error_raises() -> None:
    with pytest.raises(SyntaxError):
        check_python("def (:")
