"""Renderers: a scan report as rich text, versioned JSON or SARIF 2.1.0. Presentation only."""

from __future__ import annotations

import enum


class OutputFormat(enum.Enum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"
