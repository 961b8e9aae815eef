"""The admission webhook over real TLS with real AdmissionReview v1 JSON and real signed verdicts."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bastion.evidence.keys import Keyring
from bastion.evidence.store import EvidenceStore
from bastion.policy import Environment, attest_verdict
from bastion.policy.admission import AdmissionConfig, StoreVerdicts
from bastion.policy.webhook import make_server
from tests.conftest import pickle_call
from tests.unit.evidence_helpers import make_key, make_model
from tests.unit.policy_helpers import evidence, judge, write_policy

IMAGE_DIGEST = "sha256:" + "ab" * 32
OTHER_IMAGE = "sha256:" + "cd" * 32


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bastion-admission.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "tls.crt", tmp / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("admission")
    ring = Keyring(tmp / "home")
    _, signer = make_key(ring, "release")
    store = EvidenceStore(f"sqlite:///{tmp / 'home' / 'evidence.db'}")
    policy = write_policy(tmp / "p.yaml", "  - id: digests-match\n  - id: no-findings-above\n")
    good = make_model(tmp / "good")
    bad = make_model(tmp / "bad")
    (bad / "evil.pkl").write_bytes(pickle_call("os", "system"))
    passed = judge(policy, f"dir:{good}", evidence(good, signer), ring)
    failed = judge(policy, f"dir:{bad}", evidence(bad, signer), ring)
    assert passed.outcome.allows and not failed.outcome.allows
    for verdict in (passed, failed):
        attest_verdict(verdict, signer, store)
    # what an image pipeline publishes: a signed verdict whose subject is the image digest
    attest_verdict(
        replace(passed, subject_name="registry.example/app", subject_digest=IMAGE_DIGEST), signer, store
    )
    _, stranger = make_key(Keyring(tmp / "elsewhere"), "mallory")
    attest_verdict(
        replace(passed, subject_name="registry.example/evil", subject_digest=OTHER_IMAGE), stranger, store
    )
    cert, key = _self_signed(tmp)
    servers = {}
    for mode, audit in (("enforce", False), ("audit", True)):
        config = AdmissionConfig(namespaces={"ml-dev": Environment.DEV}, audit_only=audit)
        server = make_server("127.0.0.1", 0, cert, key, config, StoreVerdicts(store, ring))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers[mode] = server
    yield {"cert": cert, "servers": servers, "good": passed.subject_digest, "bad": failed.subject_digest}
    for server in servers.values():
        server.shutdown()
        server.server_close()
    store.close()


def _post(world: dict[str, Any], body: bytes, mode: str = "enforce") -> tuple[int, dict[str, Any]]:
    context = ssl.create_default_context(cafile=str(world["cert"]))
    port = world["servers"][mode].server_address[1]
    conn = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
    try:
        conn.request("POST", "/validate", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _review(obj: dict[str, Any], namespace: str = "ml-prod", uid: str = "7f0e-1") -> bytes:
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": uid,
                "kind": {
                    "group": "" if obj["kind"] == "Pod" else "apps",
                    "version": "v1",
                    "kind": obj["kind"],
                },
                "resource": {"group": "", "version": "v1", "resource": obj["kind"].lower() + "s"},
                "namespace": namespace,
                "operation": "CREATE",
                "userInfo": {"username": "ci-deployer"},
                "object": obj,
                "oldObject": None,
                "dryRun": False,
            },
        }
    ).encode()


def _pod(image: str, models: str | None = None) -> dict[str, Any]:
    annotations = {"bastion.dev/models": models} if models else {}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "serve", "annotations": annotations},
        "spec": {"containers": [{"name": "server", "image": image}]},
    }


def _templated(kind: str, image: str, models: str | None = None) -> dict[str, Any]:
    pod = _pod(image, models)
    return {
        "apiVersion": "apps/v1" if kind != "Job" else "batch/v1",
        "kind": kind,
        "metadata": {"name": "x"},
        "spec": {"template": {"metadata": pod["metadata"], "spec": pod["spec"]}},
    }


PINNED = "registry.example/app@" + IMAGE_DIGEST


def test_pod_with_passing_image_and_model_is_admitted(world: dict[str, Any]) -> None:
    status, answer = _post(world, _review(_pod(PINNED, world["good"]), uid="abc-123"))
    assert status == 200 and answer["kind"] == "AdmissionReview"
    assert answer["response"] == {"uid": "abc-123", "allowed": True}


@pytest.mark.parametrize("kind", ["Deployment", "StatefulSet", "Job"])
def test_workloads_with_a_failed_model_are_denied(world: dict[str, Any], kind: str) -> None:
    _, answer = _post(world, _review(_templated(kind, PINNED, world["bad"])))
    response = answer["response"]
    assert response["allowed"] is False and response["status"]["code"] == 403
    assert f"model {world['bad']}" in response["status"]["message"]
    assert "said fail (no-findings-above)" in response["status"]["message"]


def test_unpinned_image_is_denied(world: dict[str, Any]) -> None:
    _, answer = _post(world, _review(_templated("Deployment", "registry.example/app:latest")))
    assert answer["response"]["allowed"] is False
    assert "not pinned by digest" in answer["response"]["status"]["message"]


def test_verdict_by_untrusted_signer_does_not_count(world: dict[str, Any]) -> None:
    _, answer = _post(world, _review(_pod("registry.example/evil@" + OTHER_IMAGE)))
    assert answer["response"]["allowed"] is False
    assert "no signed policy verdict for prod" in answer["response"]["status"]["message"]


def test_namespace_environment_is_respected(world: dict[str, Any]) -> None:
    _, answer = _post(world, _review(_pod(PINNED, world["good"]), namespace="ml-dev"))
    assert answer["response"]["allowed"] is False  # the verdicts were made for prod, not dev
    assert "no signed policy verdict for dev" in answer["response"]["status"]["message"]


def test_audit_only_allows_with_warnings(world: dict[str, Any]) -> None:
    _, answer = _post(world, _review(_pod("registry.example/app:latest", world["bad"])), mode="audit")
    response = answer["response"]
    assert response["allowed"] is True and len(response["warnings"]) == 2
    assert all(w.startswith("[audit-only] ") for w in response["warnings"])


def test_unsupported_kind_and_bad_annotation_are_denied(world: dict[str, Any]) -> None:
    _, answer = _post(world, _review({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}))
    assert answer["response"]["allowed"] is False
    _, answer = _post(world, _review(_pod(PINNED, "latest")))
    assert "is not a sha256:<hex> digest" in answer["response"]["status"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1beta1", "request": {}}',
        b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {"no": "uid"}}',
        b"[]",
    ],
)
def test_malformed_reviews_get_400(world: dict[str, Any], body: bytes) -> None:
    status, answer = _post(world, body)
    assert status == 400 and "error" in answer


def test_malformed_object_is_denied_not_crashed(world: dict[str, Any]) -> None:
    body = _review({"kind": "Pod", "metadata": {}, "spec": {"containers": "not-a-list"}})
    status, answer = _post(world, body)
    assert status == 200 and answer["response"]["allowed"] is False


def test_oversize_request_gets_413_before_the_body_is_read(world: dict[str, Any]) -> None:
    context = ssl.create_default_context(cafile=str(world["cert"]))
    port = world["servers"]["enforce"].server_address[1]
    conn = http.client.HTTPSConnection("localhost", port, context=context, timeout=10)
    try:
        conn.putrequest("POST", "/validate")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", str(64 * 1024 * 1024))  # announced, never sent
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413 and "larger than" in json.loads(response.read())["error"]
    finally:
        conn.close()
