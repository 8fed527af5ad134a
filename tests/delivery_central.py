"""A small real HTTP server that implements central's evidence API as agreed:

``PUT /api/v1/evidence/{sha256}`` (201 stored, 200 already stored, 400 hash mismatch or
bad sha256, 413 too large, 401 no or bad token) and ``HEAD`` (200 stored, 404 not).
It runs in a thread with a bounded shutdown; the test reads what it received.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

_PATH = re.compile(r"^/api/v1/evidence/([^/]+)$")
_SHA = re.compile(r"^[0-9a-f]{64}$")


class EvidenceServer:
    def __init__(self, token: str, max_bytes: int = 8 << 20) -> None:
        self.token = token
        self.max_bytes = max_bytes
        self.stored: dict[str, bytes] = {}
        self.media_types: dict[str, str] = {}
        self.calls: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self, status: int, text: str = "") -> None:
                body = text.encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _sha(self) -> str | None:
                match = _PATH.match(self.path)
                if match is None:
                    self._answer(404, "no such path")
                    return None
                with server.lock:
                    server.calls[(self.command, match.group(1))] += 1
                if self.headers.get("Authorization") != f"Bearer {server.token}":
                    self._answer(401, "invalid token")
                    return None
                if not _SHA.match(match.group(1)):
                    self._answer(400, "bad sha256")
                    return None
                return match.group(1)

            def do_HEAD(self) -> None:
                sha = self._sha()
                if sha is not None:
                    with server.lock:
                        there = sha in server.stored
                    self._answer(200 if there else 404)

            def do_PUT(self) -> None:
                sha = self._sha()
                if sha is None:
                    return
                length = int(self.headers.get("Content-Length", "0"))
                if length > server.max_bytes:
                    self._answer(413, "too large")
                    return
                body = self.rfile.read(length)
                if hashlib.sha256(body).hexdigest() != sha:
                    self._answer(400, "hash mismatch")
                    return
                with server.lock:
                    existed = sha in server.stored
                    server.stored[sha] = body
                    server.media_types[sha] = self.headers.get("Content-Type", "")
                self._answer(200 if existed else 201, "stored")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-central"
        )

    def puts(self, sha: str) -> int:
        with self.lock:
            return self.calls[("PUT", sha)]

    def __enter__(self) -> EvidenceServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._httpd.shutdown()
        self._thread.join(timeout=5)
        self._httpd.server_close()
