"""Output hardening: labels only, top-k, rounding, and noise that is deterministic per identity and input.

Deterministic noise (seeded by an HMAC of the server secret, the model, the caller and the exact input) means
repeating a query returns the same answer, so an attacker cannot average the noise away; the predicted label
is never changed by the noise, so legitimate users keep their answer.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import numpy as np

from bastion.gateway.config import Output, OutputMode
from bastion.gateway.models import Prediction


def _noise(secret: bytes, model: str, caller: str, row: np.ndarray, size: int, scale: float) -> np.ndarray:
    mac = hmac.new(
        secret, b"\x00".join([model.encode(), caller.encode(), row.astype("<f8").tobytes()]), hashlib.sha256
    )
    rng = np.random.default_rng(int.from_bytes(mac.digest()[:16], "big"))
    return rng.normal(0.0, scale, size)


def harden(
    prediction: Prediction,
    x: np.ndarray,
    output: Output,
    *,
    labels_only: bool,
    secret: bytes,
    model: str,
    caller: str,
) -> list[Any]:
    """The per-row outputs a caller may see under ``output`` (and the detector's verdict)."""
    proba = prediction.probabilities
    mode = OutputMode.LABELS if labels_only else output.mode
    if proba is None:
        if output.round is None:
            return list(prediction.outputs)
        return [round(v, output.round) if isinstance(v, float) else v for v in prediction.outputs]
    if mode is OutputMode.LABELS:
        return list(prediction.outputs)
    if mode is OutputMode.PROBABILITIES and output.noise == 0:  # the common case, without a row loop
        plain: list[Any] = (proba if output.round is None else np.round(proba, output.round)).tolist()
        return plain
    rows: list[Any] = []
    for i in range(proba.shape[0]):
        p = proba[i].copy()
        top = int(p.argmax())
        if output.noise > 0:
            p = np.clip(p + _noise(secret, model, caller, x[i], p.size, output.noise), 1e-6, None)
            p = p / p.sum()
            new_top = int(p.argmax())
            if new_top != top:
                p[top], p[new_top] = p[new_top], p[top]
        if output.round is not None:
            p = np.round(p, output.round)
        if mode is OutputMode.TOP_K:
            order = np.argsort(-p, kind="stable")[: output.top_k]
            rows.append([{"label": prediction.classes[j], "probability": float(p[j])} for j in order])
        else:
            rows.append([float(v) for v in p])
    return rows
