"""Evidence uploader: HTTP PUT of each pending blob to central, addressed by its sha256.

For each blob the outbox lists as pending: read the file and check its hash first (a
file missing or changed on disk is marked broken and reported; its events are never
complete), ask central with HEAD whether it already holds it (200: done), otherwise PUT
it with the node's upload token. 200 and 201 both mean stored. The state lives in the
outbox, so an upload resumes after a restart at the first blob not yet confirmed.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from edge.delivery_config import CentralConfig
from edge.outbox import Outbox, PendingBlob, sha256_hex
from edge.reconcile import reconcile

log = logging.getLogger(__name__)

# Enough for the answer to a reconciliation query of 1,000 ids.
MAX_ANSWER_BYTES = 64 * 1024


class UploadOutcome(StrEnum):
    STORED = "stored"  # PUT answered 201 or 200
    ALREADY_THERE = "already_there"  # HEAD answered 200
    BROKEN = "broken"  # missing or changed on disk, or refused for good by central
    RETRY = "retry"  # central unreachable or refused for now; back-off


@dataclass(frozen=True, slots=True)
class UploadResult:
    sha256: str
    outcome: UploadOutcome
    detail: str = ""


# A node clock further than this from central's (the Date of its answers, to the second)
# is said in the log: events carry the node's times, and central holds a violation
# stamped more than 10 minutes ahead of its own clock in quarantine.
CLOCK_TOLERANCE_S = 60.0


def clock_offset_s(date_header: str | None, now: datetime) -> float | None:
    """How far ``now`` (this node's clock) is ahead of an HTTP ``Date`` (negative: behind);
    None without a readable one. The Date is whole seconds, so agreement reads as up to
    one second ahead."""
    if not date_header:
        return None
    try:
        central = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return None
    if central.tzinfo is None:
        return None
    return (now - central).total_seconds()


class ClockWatch:
    """Says once when this node's clock is found off central's by more than
    ``tolerance_s``, and once when it agrees again (an operator sets the clock on site)."""

    def __init__(self, tolerance_s: float = CLOCK_TOLERANCE_S) -> None:
        self.tolerance_s = tolerance_s
        self.off = False

    def observe(self, offset_s: float | None) -> None:
        if offset_s is None:
            return
        off = abs(offset_s) > self.tolerance_s
        if off and not self.off:
            log.warning(
                "this node's clock is %.0f s %s central's (the Date of central's answers):"
                " every event carries a wrong time, and central holds violations stamped"
                " more than 10 minutes ahead in quarantine; set the clock (NTP)",
                abs(offset_s), "ahead of" if offset_s > 0 else "behind",
            )  # fmt: skip
        elif self.off and not off:
            log.warning("this node's clock agrees with central's again (within %.0f s)", offset_s)
        self.off = off


class _Answer:
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body


class CentralClient:
    """The two evidence calls of central's API, over http.client (no extra dependency)."""

    def __init__(self, config: CentralConfig) -> None:
        url = urllib.parse.urlsplit(config.url)
        self._https = url.scheme == "https"
        self._host = url.hostname or ""
        self._port = url.port
        self._base = url.path.rstrip("/")
        self._token = config.upload_token.get_secret_value()
        self._timeout = config.timeout_s
        self.clock = ClockWatch()
        self.url = config.url

    def _request(
        self, method: str, sha256: str, body: bytes | None = None, media_type: str = ""
    ) -> _Answer:
        return self._call(method, f"evidence/{sha256}", body, media_type)

    def _call(
        self, method: str, path: str, body: bytes | None = None, media_type: str = ""
    ) -> _Answer:
        connection: http.client.HTTPConnection
        if self._https:
            connection = http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout,
                context=ssl.create_default_context(),
            )  # fmt: skip
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        headers = {"Authorization": f"Bearer {self._token}"}
        if body is not None:
            headers["Content-Type"] = media_type
            headers["Content-Length"] = str(len(body))
        try:
            connection.request(method, f"{self._base}/api/v1/{path}", body, headers)
            response = connection.getresponse()
            self.clock.observe(clock_offset_s(response.getheader("Date"), datetime.now(UTC)))
            return _Answer(response.status, response.read(MAX_ANSWER_BYTES))
        finally:
            connection.close()

    def head(self, sha256: str) -> _Answer:
        return self._request("HEAD", sha256)

    def put(self, sha256: str, body: bytes, media_type: str) -> _Answer:
        return self._request("PUT", sha256, body, media_type)

    def known(self, event_ids: list[str]) -> _Answer:
        """``POST /api/v1/events/known``: which of these events central holds."""
        body = json.dumps({"event_ids": event_ids}).encode()
        return self._call("POST", "events/known", body, "application/json")


def _short(answer: _Answer) -> str:
    text = answer.body.decode("utf-8", "replace").strip().replace("\n", " ")
    return f"HTTP {answer.status}" + (f": {text[:200]}" if text else "")


class Uploader:
    """Uploads the outbox's pending blobs; ``run_once()`` for one pass, or a thread."""

    def __init__(
        self,
        outbox: Outbox,
        client: CentralClient,
        *,
        batch: int = 16,
        idle_s: float = 1.0,
        reconcile_after_s: float | None = None,
    ) -> None:
        self.outbox = outbox
        self.client = client
        self._reconcile_after_s = reconcile_after_s
        self._next_reconcile = 0.0
        self._batch = batch
        self._idle_s = idle_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # When central was said to be out of reach (0: it was not), and whether its refusal
        # of the token was said: once for the outage, not for each blob at each try.
        self._unreachable_since = 0.0
        self._token_refusal_said = False

    @classmethod
    def from_config(
        cls, outbox: Outbox, config: CentralConfig, *, reconcile_after_s: float | None = None
    ) -> Uploader:
        return cls(outbox, CentralClient(config), reconcile_after_s=reconcile_after_s)

    def upload(self, blob: PendingBlob) -> UploadResult:
        sha = blob.sha256
        try:
            data = blob.path.read_bytes()
        except FileNotFoundError:
            return self._file_broken(sha, f"evidence file {blob.path} is missing")
        except OSError as exc:
            return self._retry(sha, f"cannot read {blob.path}: {exc.strerror}")
        actual = sha256_hex(data)
        if actual != sha or len(data) != blob.size:
            return self._file_broken(
                sha,
                f"evidence file {blob.path} changed on disk: sha256 {actual}, "
                f"{len(data)} bytes; expected {sha}, {blob.size} bytes",
            )
        try:
            head = self.client.head(sha)
            self._reached()
            if head.status == 200:
                self.outbox.mark_blob_uploaded(sha)
                return UploadResult(sha, UploadOutcome.ALREADY_THERE)
            if head.status != 404:
                return self._refused(sha, head)
            put = self.client.put(sha, data, blob.media_type.value)
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            reason = f"central unreachable: {exc}"
            if self._unreachable_since:
                return self._retry(sha, reason, quiet=True)
            self._unreachable_since = time.monotonic()
            log.warning(
                "central at %s unreachable (%s); evidence waits in the outbox and is tried"
                " again with back-off",
                self.client.url, exc,
            )  # fmt: skip
            return self._retry(sha, reason, quiet=True)
        if put.status in (200, 201):
            self.outbox.mark_blob_uploaded(sha)
            self._token_refusal_said = False
            return UploadResult(sha, UploadOutcome.STORED)
        return self._refused(sha, put)

    def _reached(self) -> None:
        if self._unreachable_since:
            log.warning(
                "central at %s reachable again after %.0f s; evidence uploads resume",
                self.client.url, time.monotonic() - self._unreachable_since,
            )  # fmt: skip
            self._unreachable_since = 0.0

    def _refused(self, sha: str, answer: _Answer) -> UploadResult:
        if answer.status == 413:
            return self._broken(sha, f"central refuses a blob this large ({_short(answer)})")
        if answer.status in (401, 403):
            if self._token_refusal_said:
                return self._retry(sha, _short(answer), quiet=True)
            self._token_refusal_said = True
            log.error(
                "central refused the node's upload token (%s): check"
                " delivery.central.upload_token against the one `central node add` gave",
                _short(answer),
            )
            return self._retry(sha, _short(answer), quiet=True)
        # 400 after our own hash check means damage in transit; 5xx is central's trouble.
        return self._retry(sha, _short(answer))

    def _broken(self, sha: str, reason: str) -> UploadResult:
        self.outbox.mark_blob_broken(sha, reason)
        return UploadResult(sha, UploadOutcome.BROKEN, reason)

    def _file_broken(self, sha: str, reason: str) -> UploadResult:
        """The file as read is missing or changed; the outbox looks again before marking
        it broken (its refused violation dropped and the blob stored again for a new event
        meanwhile: the new file is sound, and is uploaded at the next try)."""
        if self.outbox.mark_blob_file_broken(sha, reason) is None:
            return UploadResult(
                sha, UploadOutcome.RETRY, f"{reason} as read, not when looked at again"
            )
        return UploadResult(sha, UploadOutcome.BROKEN, reason)

    def _retry(self, sha: str, reason: str, *, quiet: bool = False) -> UploadResult:
        """Tried again later; ``quiet``: the cause was said once for all blobs."""
        delay = self.outbox.record_blob_failure(sha, reason)
        log.log(
            logging.DEBUG if quiet else logging.WARNING,
            "upload of %s failed (%s); next try in %.1f s", sha[:12], reason, delay,
        )  # fmt: skip
        return UploadResult(sha, UploadOutcome.RETRY, reason)

    def run_once(self) -> list[UploadResult]:
        """Upload every blob that is due now (stops early when asked to stop)."""
        results: list[UploadResult] = []
        while not self._stop.is_set():
            due = self.outbox.due_blobs(self._batch)
            if not due:
                break
            for blob in due:
                if self._stop.is_set():
                    break
                results.append(self.upload(blob))
        return results

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("uploader already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="evidence-uploader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("evidence upload pass failed")
            try:
                self._maybe_reconcile()
            except Exception:
                log.exception("reconciliation pass failed")
            self._stop.wait(self._idle_s)

    def _maybe_reconcile(self) -> None:
        after = self._reconcile_after_s
        now = time.monotonic()
        if after is None or now < self._next_reconcile:
            return
        # Asked at most every quarter of the age limit (and never more than once a second).
        self._next_reconcile = now + max(1.0, after / 4)
        reconcile(self.outbox, self.client, older_than_s=after)

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop after the blob in progress (bounded by the HTTP timeout and ``timeout_s``)."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        alive = self._thread.is_alive()
        if alive:
            log.error("uploader did not stop within %.1f s", timeout_s)
        else:
            self._thread = None
        return not alive
