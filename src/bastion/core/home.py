"""Where Bastion keeps its local state (keys, evidence, advisories, monitor records)."""

from __future__ import annotations

import os
from pathlib import Path


def bastion_home() -> Path:
    """``$BASTION_HOME``, or ``~/.bastion`` when it is not set."""
    return Path(os.environ.get("BASTION_HOME") or Path.home() / ".bastion")


def advisory_snapshot() -> Path:
    """The offline OSV advisory snapshot that `bastion advisories import` writes."""
    return bastion_home() / "advisories" / "snapshot.json"
