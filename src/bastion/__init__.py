"""Bastion: evidence, policy and enforcement for the machine-learning lifecycle.

The public Python API is small and named by task::

    import bastion
    report = bastion.scan(["model.pt"])
    report.verdict, report.findings, report.problems
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from bastion.core import ScanReport

__all__ = ["__version__", "scan"]


def scan(paths: Any, **options: Any) -> ScanReport:
    """Scan model files, folders and archives. See :func:`bastion.scanners.engine.scan_paths`."""
    from bastion.scanners.engine import scan_paths

    if isinstance(paths, str | bytes) or hasattr(paths, "__fspath__"):
        paths = [paths]
    return scan_paths(paths, **options)
