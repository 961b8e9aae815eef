"""The posture report: which MITRE ATLAS mitigations and NIST AI RMF functions are *evidenced*.

Only verified evidence counts (the same rule as for verdicts): attestations are verified against the
artifact as it is now and the trust file, and verdicts count only when signed by a trusted key. Each
control is ``evidenced``, ``partial`` or ``missing``, with what backs it and what to do next.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bastion import __version__
from bastion.policy.projection import VERDICT_PREDICATE_TYPE, project

if TYPE_CHECKING:
    from bastion.evidence.keys import Keyring
    from bastion.evidence.store import EvidenceStore
    from bastion.evidence.targets import Target


@dataclass(frozen=True)
class Control:
    framework: str  # "MITRE ATLAS" / "NIST AI RMF"
    id: str
    name: str
    status: str  # evidenced / partial / missing
    backed_by: tuple[str, ...]
    todo: str


def posture(target: Target, store: EvidenceStore, keyring: Keyring) -> dict[str, Any]:
    from bastion.evidence.attest import HashOptions, compute_manifest
    from bastion.evidence.bom import subject_for_target
    from bastion.evidence.bundle import parse_bundles
    from bastion.evidence.targets import TargetKind
    from bastion.evidence.verify import verify
    from bastion.policy.admission import authentic
    from bastion.policy.decide import evidence_bundles

    if target.kind in (TargetKind.DIR, TargetKind.FILE):
        subject = compute_manifest(target, HashOptions()).subject
    else:
        subject = subject_for_target(target)
    digest = str(subject.digests[0])
    result = verify(target, evidence_bundles(store, digest), keyring)
    facts = project(result, "prod", target=target).document
    ev = facts["evidence"]
    now = dt.datetime.now(dt.UTC)
    verdicts = []
    trusted = keyring.entries()
    for record in store.query(digest=digest, predicate_type=VERDICT_PREDICATE_TYPE):
        from bastion.evidence.statement import Statement

        (bundle,) = parse_bundles(store.bundle_bytes(record.id), source=record.id[:16])
        if authentic(bundle, trusted, now):
            verdicts.append(Statement.from_bytes(bundle.envelope.payload).predicate)
    latest: dict[str, dict[str, Any]] = {}
    for v in sorted(verdicts, key=lambda v: str(v.get("evaluated_at"))):
        latest[str(v.get("environment"))] = v
    prod = latest.get("prod")
    prod_ok = prod is not None and prod.get("outcome") in ("pass", "warn")
    scan = ev.get("scan")
    pickles = [s["file"] for s in (scan or {}).get("scanned", []) if s.get("format") == "pickle"]
    high = [f for f in (scan or {}).get("findings", []) if f.get("severity") in ("high", "critical")]
    model = ev.get("model") or {}
    controls = [
        Control(
            "MITRE ATLAS",
            "AML.M0005",
            "Control access to ML models and data at rest",
            "missing",
            (),
            "Serve and store the model through Bastion's gateway and registry (access evidence is not "
            "recorded for this artifact yet).",
        ),
        Control(
            "MITRE ATLAS",
            "AML.M0007",
            "Sanitize training data",
            "evidenced"
            if ev.get("provenance") and model.get("datasets")
            else "partial"
            if model.get("datasets")
            else "missing",
            tuple(f"dataset {d['name']}" for d in model.get("datasets", [])),
            "Attest the datasets (classification, content digest) and the training run's provenance.",
        ),
        Control(
            "MITRE ATLAS",
            "AML.M0011",
            "Restrict library loading",
            "evidenced" if scan and not pickles else "partial" if scan else "missing",
            tuple(f"scan: {len(scan['scanned'])} files" for _ in [0] if scan),
            "Convert pickle-based files to safetensors: " + ", ".join(pickles[:5])
            if pickles
            else "Attest a scan report (bastion gate) showing no code-executing formats.",
        ),
        Control(
            "MITRE ATLAS",
            "AML.M0013",
            "Code signing",
            "evidenced" if "manifest" in ev else "missing",
            tuple(f"signed by {s['name']} ({s['short_id']})" for s in facts["signers"]),
            "Sign the artifact with a trusted key (bastion attest dir:PATH --key NAME).",
        ),
        Control(
            "MITRE ATLAS",
            "AML.M0014",
            "Verify ML artifacts",
            "evidenced" if "manifest" in ev and prod_ok else "partial" if "manifest" in ev else "missing",
            tuple(
                f"{v.get('environment')} verdict {v.get('outcome')} ({v.get('policy', {}).get('name')})"
                for v in latest.values()
            ),
            "Gate the artifact under a prod policy and enforce it at admission (bastion gate).",
        ),
        Control(
            "MITRE ATLAS",
            "AML.M0016",
            "Vulnerability scanning",
            "evidenced" if scan and not high else "partial" if scan else "missing",
            tuple(f"scan verdict {scan['verdict']}, {len(high)} high/critical" for _ in [0] if scan),
            "Scan and attest the artifact and its Python environment (SBOM + offline OSV snapshot).",
        ),
        Control(
            "NIST AI RMF",
            "GOVERN",
            "Policies are defined and enforced",
            "evidenced" if latest else "missing",
            tuple(sorted(latest)),
            "Write a policy (docs/policy.md) and sign verdicts with it.",
        ),
        Control(
            "NIST AI RMF",
            "MAP",
            "Context: licence, data, architecture are recorded",
            "evidenced"
            if model.get("licenses") and model.get("datasets")
            else "partial"
            if model
            else "missing",
            tuple(f"licence {lic}" for lic in model.get("licenses", [])),
            "Attest an ML-BOM (bastion attest --predicate bom) with a model card stating licence and data.",
        ),
        Control(
            "NIST AI RMF",
            "MEASURE",
            "Risks are measured",
            "evidenced" if scan and latest else "partial" if scan else "missing",
            tuple(f"{len(scan['findings'])} findings" for _ in [0] if scan),
            "Attest the scan report and evaluate it under a policy.",
        ),
        Control(
            "NIST AI RMF",
            "MANAGE",
            "Risks are acted on",
            "evidenced" if prod_ok else "missing",
            (f"prod verdict {prod.get('outcome')} at {prod.get('evaluated_at')}",) if prod else (),
            "Get a passing signed prod verdict and enforce it (bastion admission serve).",
        ),
    ]
    return {
        "schema_version": "1.0",
        "target": target.uri,
        "subject": {"name": subject.name, "digest": digest},
        "evidence": {"status": result.status.value, "kinds": sorted(ev)},
        "controls": [c.__dict__ | {"backed_by": list(c.backed_by)} for c in controls],
        "summary": {s: sum(c.status == s for c in controls) for s in ("evidenced", "partial", "missing")},
        "generated_at": now.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "tool": {"name": "bastion", "version": __version__},
    }


def render_html(report: dict[str, Any]) -> str:
    """A self-contained page: inline CSS, no scripts, no external resources; every value escaped."""
    colours = {"evidenced": "#1a7f37", "partial": "#9a6700", "missing": "#cf222e"}
    rows = "".join(
        f"<tr><td>{html.escape(c['framework'])}</td><td><b>{html.escape(c['id'])}</b><br>"
        f"{html.escape(c['name'])}</td><td style='color:{colours[c['status']]}'><b>{c['status']}</b></td>"
        f"<td>{'<br>'.join(html.escape(b) for b in c['backed_by']) or '&ndash;'}</td>"
        f"<td>{html.escape(c['todo']) if c['status'] != 'evidenced' else ''}</td></tr>"
        for c in report["controls"]
    )
    s = report["summary"]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Bastion posture: {html.escape(report['subject']['name'])}</title>"
        "<meta http-equiv='Content-Security-Policy' "
        "content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        "<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;width:100%}"
        "td,th{border:1px solid #ccc;padding:.4em;vertical-align:top;text-align:left}th{background:#f4f4f4}"
        "</style></head><body>"
        f"<h1>Posture of {html.escape(report['subject']['name'])}</h1>"
        f"<p><code>{html.escape(report['subject']['digest'])}</code> &middot; evidence "
        f"{html.escape(report['evidence']['status'])} &middot; {s['evidenced']} evidenced, "
        f"{s['partial']} partial, "
        f"{s['missing']} missing &middot; {html.escape(report['generated_at'])}</p>"
        "<table><tr><th>framework</th><th>control</th><th>status</th><th>backed by</th><th>to do</th></tr>"
        f"{rows}</table></body></html>\n"
    )
