"""`bastion gateway keys` and `serve --help`, run on the click command objects."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bastion.cli.gateway import gateway, with_server
from bastion.gateway.credentials import ApiKeyStore


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "bastion.yaml"
    path.write_text(
        "server: {environment: prod}\n"
        "auth: {api_keys_file: keys.json}\n"
        "identities:\n  alice: {bindings: [{role: model-consumer, environment: prod, models: [m]}]}\n"
    )
    return path


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    runner = CliRunner()
    cfg = _config(tmp_path)
    created = runner.invoke(
        gateway, ["keys", "create", "-c", str(cfg), "--identity", "alice", "--expires-in", "30d"]
    )
    assert created.exit_code == 0, created.output
    token = created.stdout.strip().splitlines()[-1]
    store = ApiKeyStore(tmp_path / "keys.json")
    record = store.authenticate(token)
    assert record is not None and record.identity == "alice" and record.expires
    stored = (tmp_path / "keys.json").read_text()
    assert token not in stored and token.split("_", 2)[2] not in stored  # the secret may hold "_"
    assert (tmp_path / "keys.json").stat().st_mode & 0o077 == 0
    listed = runner.invoke(gateway, ["keys", "list", "-c", str(cfg), "--format", "json"])
    rows = json.loads(listed.output)
    assert [r["id"] for r in rows] == [record.id] and "sha256" not in rows[0]
    assert runner.invoke(gateway, ["keys", "revoke", "-c", str(cfg), record.id]).exit_code == 0
    assert store.authenticate(token) is None


def test_bad_inputs_fail_cleanly(tmp_path: Path) -> None:
    runner = CliRunner()
    cfg = _config(tmp_path)
    bad = runner.invoke(
        gateway, ["keys", "create", "-c", str(cfg), "--identity", "alice", "--expires-in", "soon"]
    )
    assert bad.exit_code != 0
    assert runner.invoke(gateway, ["keys", "revoke", "-c", str(cfg), "0000"]).exit_code != 0
    broken = tmp_path / "broken.yaml"
    broken.write_text("server: {environment: prod, surprise: 1}\n")
    assert runner.invoke(gateway, ["keys", "list", "-c", str(broken)]).exit_code != 0


def test_serve_help() -> None:
    result = CliRunner().invoke(gateway, ["serve", "--help"])
    assert result.exit_code == 0 and "--config" in result.output


def test_serve_offers_mtls_and_refuses_it_without_a_server_certificate(tmp_path: Path) -> None:
    runner = CliRunner()
    assert "--tls-client-ca" in runner.invoke(gateway, ["serve", "--help"]).output
    ca = tmp_path / "ca.crt"
    ca.write_text("not used: refused before it is read\n")
    result = runner.invoke(gateway, ["serve", "-c", str(_config(tmp_path)), "--tls-client-ca", str(ca)])
    assert result.exit_code != 0 and "tls_cert" in str(result.output) + str(result.exception)


def test_tls_flags_override_the_server_section_with_the_same_checks(tmp_path: Path) -> None:
    from bastion.errors import UsageError
    from bastion.gateway.config import load_config

    config = load_config(_config(tmp_path))
    pem = {name: tmp_path / f"{name}.pem" for name in ("cert", "key", "ca", "crl")}
    served = with_server(config, {"tls_cert": pem["cert"], "tls_key": pem["key"], "tls_client_ca": pem["ca"]})
    assert (
        served.server.tls_cert == pem["cert"].resolve() and served.server.tls_client_ca == pem["ca"].resolve()
    )
    assert served.server.environment == "prod"  # the rest of the section is kept
    assert with_server(config, {"tls_cert": None}) is config
    with pytest.raises(UsageError, match="--tls-cert: tls_cert and tls_key go together"):
        with_server(config, {"tls_cert": pem["cert"]})
    with pytest.raises(UsageError, match="tls_client_crl needs tls_client_ca"):
        with_server(config, {"tls_cert": pem["cert"], "tls_key": pem["key"], "tls_client_crl": pem["crl"]})


def _training_csv(path: Path, rows: int = 400) -> tuple[Path, np.ndarray]:
    x = np.random.default_rng(3).normal(size=(rows, 3)) @ np.array([[1, 0.5, 0], [0, 1, 0.2], [0, 0, 2.0]])
    lines = ["id,a,b,c"] + [f"{i}," + ",".join(repr(float(v)) for v in r) for i, r in enumerate(x)]
    path.write_text("\n".join(lines) + "\n")
    return path, x


def test_reference_from_a_csv_is_what_the_model_loader_accepts(tmp_path: Path) -> None:
    from bastion.gateway.reference import build_reference, load_reference

    data, x = _training_csv(tmp_path / "train.csv")
    out = tmp_path / "ref.json"
    result = CliRunner().invoke(gateway, ["reference", str(data), "--columns", "c,a,b", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "400 rows × 3 features" in result.output
    doc = json.loads(out.read_text())
    expected = build_reference(x[:, [2, 0, 1]])  # the columns in the order asked for
    assert doc.keys() == expected.keys() and doc["rows"] == 400
    for key in ("mean", "std", "covariance", "threshold"):
        assert np.allclose(doc[key], expected[key], rtol=1e-12), key
    assert np.allclose(load_reference(out, width=3).mean, doc["mean"])  # the loader accepts it


def test_reference_samples_past_max_rows_and_refuses_bad_data(tmp_path: Path) -> None:
    data, _ = _training_csv(tmp_path / "train.csv", rows=300)
    out = tmp_path / "ref.json"
    runner = CliRunner()
    sampled = runner.invoke(
        gateway, ["reference", str(data), "--columns", "a,b,c", "--max-rows", "50", "-o", str(out)]
    )
    assert sampled.exit_code == 0 and json.loads(out.read_text())["rows"] == 50
    bad = tmp_path / "bad.csv"
    lines = data.read_text().splitlines()
    lines[8] = "7,oops,1.0,2.0"
    bad.write_text("\n".join(lines) + "\n")
    for args, message in (
        ([str(data), "--columns", "a,zz"], "no column 'zz'"),
        ([str(bad), "--columns", "a,b,c"], "not a number"),
        ([str(data), "--columns", "a,b,c", "--max-rows", "10"], "10 is not in the range"),
    ):
        result = runner.invoke(gateway, ["reference", *args, "-o", str(tmp_path / "x.json")])
        assert result.exit_code != 0 and message in result.output + str(result.exception), (
            args,
            result.output,
        )
    empty = tmp_path / "few.csv"
    empty.write_text("a,b\n1,2\n3,4\n")
    result = runner.invoke(gateway, ["reference", str(empty), "-o", str(tmp_path / "x.json")])
    assert result.exit_code != 0 and "more rows than features" in str(result.exception)


def test_reference_without_pyarrow_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from bastion.errors import UsageError
    from bastion.gateway.reference import reference_from_data

    data, _ = _training_csv(tmp_path / "train.csv")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now fails, as without the extra
    monkeypatch.setitem(sys.modules, "pyarrow.compute", None)
    with pytest.raises(UsageError, match="'monitor' extra"):
        reference_from_data(data)
