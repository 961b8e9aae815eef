"""mTLS: with server.tls_client_ca the TLS handshake requires a client certificate from that CA, and a
verified certificate's subject maps to an identity (auth.client_certificates). Certificates are made here
with ``cryptography``."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bastion.errors import ConfigError
from bastion.gateway.app import build_app
from bastion.gateway.server import serve_in_thread, uvicorn_config
from tests.gateway_helpers import Setup, bearer, make_setup

Key = ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def _cert(
    subject: str, key: Key, issuer: tuple[x509.Name, Key] | None, *, ca: bool = False, ip: bool = False
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(folder: Path, stem: str, cert: x509.Certificate, key: Key) -> tuple[str, str]:
    crt, pem = folder / f"{stem}.crt", folder / f"{stem}.key"
    crt.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return str(crt), str(pem)


@pytest.fixture()
def pki(tmp_path: Path) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    ca_key, rogue_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert("Test CA", ca_key, None, ca=True)
    rogue = _cert("Rogue CA", rogue_key, None, ca=True)
    out["ca"] = _write(tmp_path, "ca", ca, ca_key)
    certs = {}
    for stem, subject, issuer, ip in (
        ("server", "gateway", (ca.subject, ca_key), True),
        ("svc", "svc-a", (ca.subject, ca_key), False),
        ("stranger", "svc-z", (ca.subject, ca_key), False),
        ("forged", "svc-a", (rogue.subject, rogue_key), False),
        ("revoked", "svc-a", (ca.subject, ca_key), False),
    ):
        key = ec.generate_private_key(ec.SECP256R1())
        certs[stem] = _cert(subject, key, issuer, ip=ip)
        out[stem] = _write(tmp_path, stem, certs[stem], key)
    now = dt.datetime.now(dt.UTC)
    for stem, (issuer_name, issuer_key), next_update in (
        ("crl", (ca.subject, ca_key), now + dt.timedelta(days=1)),
        ("rogue-crl", (ca.subject, rogue_key), now + dt.timedelta(days=1)),  # names the CA, signed by another
        ("stale-crl", (ca.subject, ca_key), now - dt.timedelta(minutes=1)),
    ):
        revoked = (
            x509.RevokedCertificateBuilder()
            .serial_number(certs["revoked"].serial_number)
            .revocation_date(now - dt.timedelta(minutes=1))
            .build()
        )
        crl = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer_name)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(next_update)
            .add_revoked_certificate(revoked)
            .sign(issuer_key, hashes.SHA256())
        )
        path = tmp_path / f"{stem}.pem"
        path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        out[stem] = (str(path), "")
    return out


@pytest.fixture()
def served(tmp_path: Path, pki: dict[str, tuple[str, str]]) -> Iterator[tuple[Setup, str]]:
    setup = _mtls_setup(tmp_path, pki)
    with serve_in_thread(build_app(setup.config), setup.config) as url:
        yield setup, url


def _mtls_server(pki: dict[str, tuple[str, str]], **extra: str) -> dict[str, str]:
    return {
        "environment": "prod",
        "tls_cert": pki["server"][0],
        "tls_key": pki["server"][1],
        "tls_client_ca": pki["ca"][0],
        **extra,
    }


def _mtls_setup(tmp_path: Path, pki: dict[str, tuple[str, str]], **server: str) -> Setup:
    """A gateway whose TLS asks for client certificates of the test CA; CN=svc-a,O=Acme is alice."""
    return make_setup(
        tmp_path,
        server=_mtls_server(pki, **server),
        auth={"api_keys_file": "keys.json", "client_certificates": {"CN=svc-a,O=Acme": "alice"}},
    )


def _last_caller(setup: Setup, count: int) -> str:
    """The caller of the latest access record, once ``count`` records exist (the record is written just
    after the response is sent, so a fast client can look before it lands)."""
    deadline = time.monotonic() + 5
    while len(setup.access()) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return str(setup.access()[-1]["caller"])


def _client(pki: dict[str, tuple[str, str]], cert: str | None) -> httpx.Client:
    context = ssl.create_default_context(cafile=pki["ca"][0])
    if cert is not None:
        context.load_cert_chain(*pki[cert])
    return httpx.Client(verify=context, timeout=10)


def test_a_mapped_client_certificate_is_an_identity(
    served: tuple[Setup, str], pki: dict[str, tuple[str, str]]
) -> None:
    setup, url = served
    assert url.startswith("https://")
    with _client(pki, "svc") as c:
        r = c.get(f"{url}/v1/models")
    assert r.status_code == 200 and r.json() == {"models": ["clf"]}  # alice's grants
    assert _last_caller(setup, 1) == "alice"


def test_a_bearer_credential_wins_over_the_certificate(
    served: tuple[Setup, str], pki: dict[str, tuple[str, str]]
) -> None:
    setup, url = served
    with _client(pki, "svc") as c:
        r = c.get(f"{url}/v1/models", headers=bearer(setup.keys["bob"]))
    assert r.status_code == 200 and r.json() == {"models": ["clf", "lin"]}
    assert _last_caller(setup, 1) == "bob"


def test_an_unmapped_subject_is_unauthenticated(
    served: tuple[Setup, str], pki: dict[str, tuple[str, str]]
) -> None:
    _, url = served
    with _client(pki, "stranger") as c:
        r = c.get(f"{url}/v1/models")
    assert r.status_code == 401 and r.json()["error"] == "missing-credentials"


@pytest.mark.parametrize("cert", [None, "forged"])
def test_no_certificate_or_one_from_another_ca_fails_the_handshake(
    served: tuple[Setup, str], pki: dict[str, tuple[str, str]], cert: str | None
) -> None:
    _, url = served
    with (
        _client(pki, cert) as c,
        pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
    ):
        c.get(f"{url}/v1/models")


def test_mtls_needs_a_server_certificate(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tls_client_ca"):
        make_setup(tmp_path, server={"environment": "prod", "tls_client_ca": "ca.crt"})


def test_a_revoked_client_certificate_fails_the_handshake(
    tmp_path: Path, pki: dict[str, tuple[str, str]]
) -> None:
    setup = _mtls_setup(tmp_path, pki, tls_client_crl=pki["crl"][0])
    with serve_in_thread(build_app(setup.config), setup.config) as url:
        with _client(pki, "svc") as c:
            assert c.get(f"{url}/v1/models").status_code == 200  # same subject, not revoked
        with (
            _client(pki, "revoked") as c,
            pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)),
        ):
            c.get(f"{url}/v1/models")


@pytest.mark.parametrize(
    ("crl", "message"),
    [("rogue-crl", "not signed by"), ("stale-crl", "expired"), ("ca", "no PEM revocation list")],
)
def test_revocation_lists_that_prove_nothing_stop_the_start(
    tmp_path: Path, pki: dict[str, tuple[str, str]], crl: str, message: str
) -> None:
    setup = make_setup(tmp_path, server=_mtls_server(pki, tls_client_crl=pki[crl][0]))
    with pytest.raises(ConfigError, match=message):
        uvicorn_config(object(), setup.config, port=0)  # checked before any app would be served


def test_a_revocation_list_needs_the_client_ca(tmp_path: Path, pki: dict[str, tuple[str, str]]) -> None:
    server = {"environment": "prod", "tls_cert": pki["server"][0], "tls_key": pki["server"][1]}
    with pytest.raises(ConfigError, match="tls_client_crl needs tls_client_ca"):
        make_setup(tmp_path, server={**server, "tls_client_crl": pki["crl"][0]})
