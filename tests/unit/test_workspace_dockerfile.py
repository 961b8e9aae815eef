"""Dockerfiles: company rules on base images, users, downloads, secrets, CA certificates and pins."""

from __future__ import annotations

from bastion.scanners.workspace import dockerfile


def _found(text: str, **kw: object) -> set[tuple[int, str]]:
    return {(h.line, h.rule.rule_id) for h in dockerfile.check(text, **kw)}  # type: ignore[arg-type]


def test_planted_problems() -> None:
    text = (
        "FROM python:3.11 AS build\n"  # 1 K001
        "ARG HF_TOKEN=hf_live_value_1234\n"  # 2 K006
        "RUN curl -fsSL https://get.example.sh | bash\n"  # 3 K004
        "RUN curl -k https://x/y -o y && \\\n"  # 4 K009
        "    pip install torch transformers==4.40.0\n"  # (4) K008
        "ADD https://example.org/model.bin /m/\n"  # 6 K005
        "FROM build\n"  # 7: a stage, not an image; final stage runs as root
        "ENV API_KEY=abc123def456 LOG_LEVEL=info\n"  # 8 K006
        "USER root\n"
    )
    assert _found(text) == {
        (1, "BAS-K001"),
        (2, "BAS-K006"),
        (3, "BAS-K004"),
        (4, "BAS-K009"),
        (4, "BAS-K008"),
        (6, "BAS-K005"),
        (8, "BAS-K006"),
        (7, "BAS-K003"),
    }


def test_good_dockerfile_is_clean() -> None:
    digest = "sha256:" + "a" * 64
    text = (
        "# syntax=docker/dockerfile:1\n"
        f"FROM registry.acme.example/python:3.11@{digest}\n"
        "ARG HF_TOKEN\n"
        "ENV TOKEN_FILE=/run/secrets/token PASSWORD=${PASSWORD}\n"
        "COPY certs/acme-ca.crt /usr/local/share/ca-certificates/\n"
        "RUN update-ca-certificates && pip install --require-hashes -r requirements.txt\n"
        "ADD --checksum=sha256:abc https://example.org/x /x\n"
        "USER 10001\n"
    )
    assert _found(text, approved=("registry.acme.example/",), require_ca=True) == set()


def test_policy_rules() -> None:
    text = "FROM docker.io/library/python:3.11@sha256:" + "b" * 64 + "\nUSER app\n"
    assert _found(text, approved=("registry.acme.example/",), require_ca=True) == {
        (1, "BAS-K002"),
        (1, "BAS-K007"),
    }


def test_content_detection() -> None:
    assert dockerfile.looks_like_dockerfile("# base\nARG V=1\nFROM alpine:${V}\nRUN echo\n")
    assert not dockerfile.looks_like_dockerfile("FROM the start, this was a story\nabout things\n")
    assert dockerfile.is_dockerfile_name("docker/Dockerfile.gpu") and dockerfile.is_dockerfile_name(
        "x.Containerfile"
    )
