"""The HTTPS server behind ``bastion admission serve`` (stdlib ``http.server`` + ``ssl``, TLS 1.2+).

``POST /validate`` takes an AdmissionReview v1 and answers one; ``GET /healthz`` answers ``ok``.
Oversize bodies get 413, malformed reviews 400 (the API server then applies the webhook's
``failurePolicy``, which should be ``Fail``); an unexpected error is a 500, never an allow.
"""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bastion.policy.admission import MAX_REVIEW_BYTES, AdmissionConfig, ReviewError, VerdictLookup, review


def make_server(
    host: str, port: int, cert: Path, key: Path, config: AdmissionConfig, lookup: VerdictLookup
) -> ThreadingHTTPServer:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    lock = threading.Lock()  # the evidence store handle is shared; keep lookups one at a time

    def locked(digest: str, env: object) -> tuple[bool, str]:
        with lock:
            return lookup(digest, env)  # type: ignore[arg-type]

    class Handler(BaseHTTPRequestHandler):
        server_version = "bastion-admission"
        sys_version = ""

        def log_message(self, format: str, *args: object) -> None:
            return  # access logs belong to the API server's audit log; keep stdout quiet

        def _send(self, code: int, payload: dict[str, object]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self) -> None:
            if self.path.split("?", 1)[0] != "/validate":
                self._send(404, {"error": "not found"})
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._send(411, {"error": "Content-Length required"})
                return
            if length < 0 or length > MAX_REVIEW_BYTES:
                self._send(413, {"error": f"request larger than {MAX_REVIEW_BYTES} bytes"})
                self.close_connection = True
                return
            body = self.rfile.read(length)
            try:
                self._send(200, review(body, config, locked))
            except ReviewError as exc:
                self._send(400, {"error": str(exc)})
            except Exception as exc:  # noqa: BLE001 - the HTTP boundary: answer 500 (a deny), never crash
                self._send(500, {"error": f"internal error: {exc.__class__.__name__}"})

    server = ThreadingHTTPServer((host, port), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    return server
