"""CycloneDX 1.6 SBOM / ML-BOM documents, built from what is on disk (nothing is imported or loaded).

* model folders and files: a ``machine-learning-model`` component with a model card (architecture
  from ``config.json``, task, licence and datasets from the model card's front matter), every file
  as a ``file`` component with its SHA-256, and each dataset as a ``data`` component;
* Python environments: every installed distribution as a ``library`` with its purl, licence and
  the SHA-256 of its ``RECORD`` (which pins the hash of every installed file).

Documents carry no timestamp and a serial number derived from the subject digest, so the same
input gives the same bytes.
"""

from __future__ import annotations

import email.parser
import hashlib
import json
import re
import uuid
from pathlib import Path
from typing import Any

from bastion import __version__
from bastion.core import Digest, Subject
from bastion.errors import UsageError
from bastion.evidence.canonical import canonical_json
from bastion.evidence.envfiles import read_dist_file, site_packages, startup_files
from bastion.evidence.hashing import HashSpec, Method, Selection, hash_entries, root_digest, walk
from bastion.evidence.manifest import ModelManifest, build_manifest
from bastion.evidence.targets import Target, TargetKind

BOM_PREDICATE_TYPE = "https://cyclonedx.org/bom/v1.6"
_MAX_CARD = 1024 * 1024


def bom_for_target(target: Target, manifest: ModelManifest | None = None) -> tuple[dict[str, Any], Subject]:
    """The BOM of ``target`` and the subject it describes (for images: the image id)."""
    if target.kind is TargetKind.GIT and manifest is None:
        from bastion.evidence.gitrepo import git_manifest

        manifest = git_manifest(target.path, target.rev, Selection(ignore_paths=()))[0]
    if target.kind in (TargetKind.DIR, TargetKind.FILE, TargetKind.GIT):
        return model_bom(target, manifest)
    if target.kind is TargetKind.ENV:
        return environment_bom(target.path)
    if target.kind is TargetKind.IMAGE:
        from bastion.evidence.imagebom import image_bom

        document, subjects = image_bom(target.path)
        return document, subjects[0]
    raise UsageError(f"no BOM for {target.kind.value}: targets")


def subject_for_target(target: Target) -> Subject:
    """The subject ``target`` has now, to look its evidence up (images are not catalogued for this)."""
    if target.kind is TargetKind.ENV:
        return environment_bom(target.path)[1]
    if target.kind is TargetKind.GIT:
        from bastion.evidence.gitrepo import git_manifest

        return git_manifest(target.path, target.rev, Selection(ignore_paths=()))[0].subject
    if target.kind is TargetKind.IMAGE:
        from bastion.evidence.image import read_image

        return read_image(target.path).subjects[0]
    return bom_for_target(target)[1]


def cyclonedx_document(
    subject: Subject, component: dict[str, Any], components: list[dict[str, Any]]
) -> dict[str, Any]:
    serial = uuid.uuid5(uuid.NAMESPACE_URL, f"bastion:{subject.name}:{subject.digests[0]}")
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": serial.urn,
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "bastion", "version": __version__}]},
            "component": component,
        },
        "components": components,
    }


# --- models ------------------------------------------------------------------------------------


def model_bom(target: Target, manifest: ModelManifest | None = None) -> tuple[dict[str, Any], Subject]:
    if manifest is None or manifest.spec.method is not Method.FILES or manifest.spec.algorithm != "sha256":
        selection = manifest.selection if manifest else Selection()
        entries = walk(target.path, selection)
        manifest = build_manifest(
            target.name, HashSpec(), selection, entries, hash_entries(entries, HashSpec())
        )
    subject = manifest.subject
    files = [
        {
            "type": "file",
            "bom-ref": f"file:{r.file}",
            "name": target.name if r.file == "." else r.file,
            "hashes": [{"alg": "SHA-256", "content": r.digest}],
        }
        for r in manifest.resources
    ]
    card = _model_card(target)
    datasets = [
        {
            "type": "data",
            "bom-ref": f"dataset:{name}",
            "name": name,
            "data": [{"type": "dataset", "name": name}],
        }
        for name in card.pop("datasets", [])
    ]
    model: dict[str, Any] = {
        "type": "machine-learning-model",
        "bom-ref": "model",
        "name": target.name,
        "hashes": [{"alg": "SHA-256", "content": root_digest(manifest.resources)}],
    }
    if card.get("license"):
        model["licenses"] = [{"license": {"name": card["license"]}}]
    parameters: dict[str, Any] = {}
    for key, field in (
        ("task", "task"),
        ("family", "architectureFamily"),
        ("architecture", "modelArchitecture"),
    ):
        if card.get(key):
            parameters[field] = card[key]
    if datasets:
        parameters["datasets"] = [{"ref": d["bom-ref"]} for d in datasets]
    model["modelCard"] = {"modelParameters": parameters} if parameters else {}
    if not model["modelCard"]:
        del model["modelCard"]
    document = cyclonedx_document(subject, model, files + datasets)
    canonical_json(document)
    return document, subject


def _model_card(target: Target) -> dict[str, Any]:
    """Architecture from config.json, the rest from the README's YAML front matter (if they parse)."""
    card: dict[str, Any] = {}
    if target.kind is not TargetKind.DIR:
        return card
    config = _read_small(target.path / "config.json")
    if config is not None:
        try:
            data = json.loads(config)
        except ValueError:
            data = None
        if isinstance(data, dict):
            architectures = data.get("architectures")
            if isinstance(architectures, list) and architectures and isinstance(architectures[0], str):
                card["architecture"] = architectures[0]
            if isinstance(data.get("model_type"), str):
                card["family"] = data["model_type"]
            if isinstance(data.get("task"), str):
                card["task"] = data["task"]
    readme = _read_small(target.path / "README.md")
    if readme is not None:
        front = _front_matter(readme.decode("utf-8", errors="replace"))
        for key in ("license", "pipeline_tag", "datasets"):
            if key in front:
                card["task" if key == "pipeline_tag" else key] = front[key]
        if isinstance(card.get("license"), list):
            card["license"] = " OR ".join(card["license"])
        if isinstance(card.get("datasets"), str):
            card["datasets"] = [card["datasets"]]
        if isinstance(card.get("task"), list):
            card["task"] = card["task"][0] if card["task"] else None
    return card


def _read_small(path: Path) -> bytes | None:
    try:
        if path.is_symlink() or not path.is_file() or path.stat().st_size > _MAX_CARD:
            return None
        return path.read_bytes()
    except OSError:
        return None


def _front_matter(text: str) -> dict[str, str | list[str]]:
    """The flat keys and string lists of a Hugging Face model card's ``---`` front matter."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    result: dict[str, str | list[str]] = {}
    current: str | None = None
    for line in lines[1:]:
        if line.strip() == "---":
            break
        item = re.match(r"^\s+-\s+(.+)$", line)
        if item and current is not None:
            existing = result.get(current)
            values = existing if isinstance(existing, list) else []
            values.append(item.group(1).strip().strip("'\""))
            result[current] = values
            continue
        pair = re.match(r"^([A-Za-z0-9_-]+):\s*(.*)$", line)
        if pair:
            current = pair.group(1)
            value = pair.group(2).strip()
            if value.startswith("[") and value.endswith("]"):
                result[current] = [v.strip().strip("'\"") for v in value[1:-1].split(",") if v.strip()]
            elif value:
                result[current] = value.strip("'\"")
    return result


# --- Python environments -------------------------------------------------------------------------


def environment_bom(prefix: Path) -> tuple[dict[str, Any], Subject]:
    components: dict[str, dict[str, Any]] = {}
    for site in site_packages(prefix):
        for info in sorted(site.glob("*.dist-info")):
            component = _distribution(info)
            if component is not None:
                components.setdefault(component["bom-ref"], component)
    ordered = [components[k] for k in sorted(components)]
    digest = hashlib.sha256(
        canonical_json([[c["name"], c["version"], c["hashes"][0]["content"]] for c in ordered])
    ).hexdigest()
    name = f"python-env:{prefix.resolve().name}"
    subject = Subject(name, (Digest("sha256", digest),))
    env: dict[str, Any] = {
        "type": "platform",
        "bom-ref": "environment",
        "name": name,
        "hashes": [{"alg": "SHA-256", "content": digest}],
        "properties": startup_properties(startup_files(prefix)),
    }
    return cyclonedx_document(subject, env, ordered), subject


STARTUP_COUNT = "bastion:unowned-startup-files"
STARTUP_FILE = "bastion:unowned-startup-file"


def startup_properties(files: dict[str, str]) -> list[dict[str, str]]:
    """The ``.pth`` and ``*customize.py`` files no RECORD owns, as signed properties (count first)."""
    return [{"name": STARTUP_COUNT, "value": str(len(files))}] + [
        {"name": STARTUP_FILE, "value": f"{path} sha256:{digest}"} for path, digest in sorted(files.items())
    ]


def signed_startup_files(document: Any) -> dict[str, str] | None:
    """The startup files a signed environment BOM recorded; None when it predates recording them."""
    try:
        properties = document["metadata"]["component"].get("properties", [])
    except (KeyError, TypeError, AttributeError):
        return None
    if not any(isinstance(p, dict) and p.get("name") == STARTUP_COUNT for p in properties):
        return None
    files: dict[str, str] = {}
    for p in properties:
        if isinstance(p, dict) and p.get("name") == STARTUP_FILE and isinstance(p.get("value"), str):
            path, _, digest = p["value"].rpartition(" sha256:")
            files[path] = digest
    return files


def _distribution(info: Path) -> dict[str, Any] | None:
    metadata = read_dist_file(info / "METADATA")
    if metadata is None:
        return None
    return distribution_component(metadata, read_dist_file(info / "RECORD"))


def distribution_component(metadata: bytes, record: bytes | None) -> dict[str, Any] | None:
    """A ``library`` component for one ``*.dist-info`` (METADATA headers, SHA-256 of RECORD)."""
    message = email.parser.BytesParser().parsebytes(metadata, headersonly=True)
    name, version = message.get("Name"), message.get("Version")
    if not name or not version:
        return None
    normalized = re.sub(r"[-_.]+", "-", name).lower()
    component: dict[str, Any] = {
        "type": "library",
        "bom-ref": f"pkg:pypi/{normalized}@{version}",
        "name": name,
        "version": version,
        "purl": f"pkg:pypi/{normalized}@{version}",
        "hashes": [{"alg": "SHA-256", "content": hashlib.sha256(record or b"").hexdigest()}],
        "properties": [
            {"name": "bastion:record", "value": "present" if record is not None else "missing"},
            {"name": "bastion:record-files", "value": str(len((record or b"").splitlines()))},
        ],
    }
    licence = message.get("License-Expression") or message.get("License")
    if licence and len(licence) < 200 and "\n" not in licence:
        component["licenses"] = [{"license": {"name": licence.strip()}}]
    return component
