"""Capture of served traffic for the monitor: each served row's inputs and the model's output, as JSON Lines.

Layout (an ordinary folder of JSON Lines files, one line per input row)::

    <directory>/<model>/<YYYY-MM-DD>/<host>-<pid>-<start>.jsonl
    {"_time": "2026-01-31T12:00:00.123Z", "_request_id": "...", "_model": "churn", "_version": "1",
     "<feature>": 0.5, ..., "prediction": [0.1, 0.9]}

Feature names come from the model's ``feature_names`` (else ``f0``, ``f1``, ...). ``prediction`` is the
model's own output for the row before output hardening: the class probabilities (class order) when the model
gives them, else its label or value. The day folder is the row's UTC date. Only these fields are written:
never a header, a credential or the caller's identity. Files and folders are private to the gateway's user.

The request path only appends rows to a buffer; a background thread encodes and writes them every
``flush_interval_s`` (and when the buffer grows), and ``close`` (the gateway's graceful shutdown) writes the
rest. Rows are sampled with probability ``sample``; past ``max_buffered_rows`` waiting rows (a disk that
cannot keep up) new rows are dropped and counted, never allowed to hold up serving.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import threading
import time
from collections import defaultdict
from typing import Any

import numpy as np

from bastion.gateway.config import Capture
from bastion.gateway.models import Prediction

log = logging.getLogger("bastion.gateway")


class CaptureWriter:
    """One model's capture: a buffer filled by requests, emptied by a background thread."""

    def __init__(self, config: Capture, model: str, version: str, names: tuple[str, ...]) -> None:
        self.config = config
        self.model, self.version, self.names = model, version, names
        self.dropped = 0
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._random = random.Random()  # noqa: S311 - sampling for monitoring, not a security decision
        self._file = f"{socket.gethostname()}-{os.getpid()}-{int(time.time())}.jsonl"
        self._thread = threading.Thread(target=self._run, name=f"bastion-capture-{model}", daemon=True)
        self._thread.start()

    def add(self, time_text: str, request_id: str, x: np.ndarray, prediction: Prediction) -> None:
        """Queue the rows of one served request (cheap: no encoding, no I/O)."""
        sample = self.config.sample
        keep = (
            range(x.shape[0])
            if sample >= 1
            else [i for i in range(x.shape[0]) if self._random.random() < sample]
        )
        if not keep:
            return
        inputs = x.tolist()
        outputs = (
            prediction.probabilities.tolist() if prediction.probabilities is not None else prediction.outputs
        )
        meta = {"_time": time_text, "_request_id": request_id, "_model": self.model, "_version": self.version}
        rows = [
            {**meta, **dict(zip(self.names, inputs[i], strict=True)), "prediction": outputs[i]} for i in keep
        ]
        with self._lock:
            room = self.config.max_buffered_rows - len(self._rows)
            if room < len(rows):
                self.dropped += len(rows) - max(room, 0)
                rows = rows[: max(room, 0)]
            self._rows.extend(rows)
            if len(self._rows) >= 4096:
                self._wake.set()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.config.flush_interval_s)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Write every buffered row, grouped into the files of their UTC days."""
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return
        by_day: dict[str, list[str]] = defaultdict(list)
        for row in rows:
            by_day[row["_time"][:10]].append(json.dumps(row, ensure_ascii=False, allow_nan=False))
        for day, lines in by_day.items():
            folder = self.config.directory / self.model / day
            try:
                folder.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(folder / self._file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as handle:
                    handle.write("\n".join(lines) + "\n")
            except OSError as exc:
                self.dropped += len(lines)
                log.error("capture for %s: cannot write %s (%s)", self.model, folder, exc.strerror)

    def close(self) -> None:
        """Stop the thread and write what is left (graceful shutdown); closing twice is harmless."""
        if not self._closed:
            self._closed = True
            self._wake.set()
            self._thread.join(timeout=30)
        self.flush()
        if self.dropped:
            log.warning("capture for %s dropped %d rows", self.model, self.dropped)


def feature_names(names: tuple[str, ...] | None, width: int) -> tuple[str, ...]:
    """The configured names (their count already checked against the model's width), else f0, f1, ..."""
    return names or tuple(f"f{i}" for i in range(width))
