from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edge.delivery_config import CentralConfig
from edge.outbox import Outbox
from edge.uploader import Uploader, UploadOutcome
from roadwatch.contract import EvidenceRole, MediaType
from roadwatch.net import free_port
from tests.delivery_central import EvidenceServer
from tests.delivery_support import BIG_BUDGET, blob, signed_event

TOKEN = "node-token-5b1f0e"


def uploader(outbox: Outbox, url: str, token: str = TOKEN) -> Uploader:
    config = CentralConfig.model_validate({"url": url, "upload_token": token, "timeout_s": 5})
    return Uploader.from_config(outbox, config)


def stored_event(outbox: Outbox, size: int = 3000) -> tuple[str, list[str]]:
    blobs = [
        blob(EvidenceRole.FRAME_AT, b"a" * size + Path(outbox.directory).name.encode()),
        blob(EvidenceRole.VEHICLE_CROP, b"v" * size),
        blob(EvidenceRole.CLIP, b"c" * size * 3, MediaType.MP4),
    ]
    event, blobs = signed_event(blobs)
    outbox.put_violation(event, blobs)
    return event.event_id, [b.ref.sha256 for b in blobs]


def test_upload_is_idempotent_and_completes_the_event(tmp_path: Path) -> None:
    with EvidenceServer(TOKEN) as central, Outbox(tmp_path, BIG_BUDGET) as outbox:
        event_id, shas = stored_event(outbox)
        central.stored[shas[0]] = b"already there"  # HEAD says 200: not sent again
        results = uploader(outbox, central.url).run_once()
        assert sorted(r.outcome for r in results) == sorted(
            [UploadOutcome.ALREADY_THERE, UploadOutcome.STORED, UploadOutcome.STORED]
        )
        assert central.puts(shas[0]) == 0
        assert all(central.puts(s) == 1 for s in shas[1:])
        assert central.media_types[shas[2]] == "video/mp4"
        assert outbox.evidence_progress(event_id).complete
        assert not any(outbox.blob_path(s).exists() for s in shas)
        assert uploader(outbox, central.url).run_once() == []


def test_upload_resumes_after_a_restart_at_blob_granularity(tmp_path: Path) -> None:
    with EvidenceServer(TOKEN) as central:
        with Outbox(tmp_path, BIG_BUDGET) as outbox:
            event_id, shas = stored_event(outbox)
            first = uploader(outbox, central.url)
            [pending] = outbox.due_blobs(1)
            assert first.upload(pending).outcome is UploadOutcome.STORED
        # The process restarts: only the blobs not yet confirmed are sent.
        with Outbox(tmp_path, BIG_BUDGET) as outbox:
            results = uploader(outbox, central.url).run_once()
            assert len(results) == 2
            assert all(central.puts(s) == 1 for s in shas)
            assert outbox.evidence_progress(event_id).complete


@pytest.mark.parametrize("damage", ["changed", "missing"])
def test_a_file_changed_or_missing_on_disk_is_caught_and_reported(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    with EvidenceServer(TOKEN) as central, Outbox(tmp_path, BIG_BUDGET) as outbox:
        event_id, shas = stored_event(outbox)
        path = outbox.blob_path(shas[2])
        if damage == "changed":
            body = path.read_bytes()
            path.write_bytes(body[:-1] + bytes([body[-1] ^ 0xFF]))  # (never the same byte)
        else:
            path.unlink()
        with caplog.at_level(logging.ERROR):
            results = {r.sha256: r for r in uploader(outbox, central.url).run_once()}
        assert results[shas[2]].outcome is UploadOutcome.BROKEN
        assert damage in results[shas[2]].detail
        assert central.puts(shas[2]) == 0 and shas[2] not in central.stored
        progress = outbox.evidence_progress(event_id)
        assert (progress.uploaded, progress.broken, progress.complete) == (2, 1, False)
        assert event_id in caplog.text and "broken" in caplog.text
        assert outbox.stats().blobs_broken == 1
        assert uploader(outbox, central.url).run_once() == []  # never retried as if fine


def test_a_bad_token_or_a_down_central_is_retried_later(tmp_path: Path) -> None:
    with EvidenceServer(TOKEN) as central, Outbox(tmp_path, BIG_BUDGET) as outbox:
        event_id, shas = stored_event(outbox)
        results = uploader(outbox, central.url, token="wrong-token-1234").run_once()
        assert {r.outcome for r in results} == {UploadOutcome.RETRY}
        assert "401" in (outbox.blob_error(shas[0]) or "")
        assert outbox.due_blobs(10) == []  # backing off
        assert not outbox.evidence_progress(event_id).complete
    with Outbox(tmp_path / "other", BIG_BUDGET) as outbox:
        stored_event(outbox)
        down = f"http://127.0.0.1:{free_port()}/"
        results = uploader(outbox, down).run_once()
        assert {r.outcome for r in results} == {UploadOutcome.RETRY}
        assert all("unreachable" in r.detail for r in results)


def test_a_blob_central_will_never_take_is_reported(tmp_path: Path) -> None:
    with EvidenceServer(TOKEN, max_bytes=5000) as central, Outbox(tmp_path, BIG_BUDGET) as outbox:
        event_id, shas = stored_event(outbox)
        results = {r.sha256: r.outcome for r in uploader(outbox, central.url).run_once()}
        assert results[shas[2]] is UploadOutcome.BROKEN  # 9,000 bytes > 5,000
        assert not outbox.evidence_progress(event_id).complete


def test_the_uploader_thread_stops_in_bounded_time(tmp_path: Path) -> None:
    with EvidenceServer(TOKEN) as central, Outbox(tmp_path, BIG_BUDGET) as outbox:
        event_id, _ = stored_event(outbox)
        worker = uploader(outbox, central.url)
        worker.start()
        try:
            import time

            deadline = time.monotonic() + 10
            while not outbox.evidence_progress(event_id).complete:
                assert time.monotonic() < deadline
                time.sleep(0.02)
        finally:
            assert worker.stop(timeout_s=5)


def test_central_out_of_reach_is_said_once_and_its_coming_back_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A central down for a while was one warning per blob at each try (72 lines in a
    minute for 4 violations); a technician reads one for the outage, and one when it is
    over. A refused token likewise: said once, with what to check."""
    import time

    from edge.uploader import CentralClient

    caplog.set_level(logging.DEBUG, logger="edge.uploader")
    with Outbox(tmp_path, BIG_BUDGET) as outbox, EvidenceServer(TOKEN) as central:
        stored_event(outbox)
        stored_event(outbox, size=4000)
        down = f"http://127.0.0.1:{free_port()}/"
        up = uploader(outbox, down)
        results = up.run_once()
        assert len(results) == 6 and {r.outcome for r in results} == {UploadOutcome.RETRY}
        time.sleep(1.2)  # (the first back-off)
        assert len(up.run_once()) == 6
        said = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert [r.getMessage() for r in said] == [
            f"central at {down} unreachable ([Errno 111] Connection refused); evidence waits"
            " in the outbox and is tried again with back-off"
        ]
        up.client = CentralClient(
            CentralConfig.model_validate({"url": central.url, "upload_token": "wrong-token-1"})
        )
        caplog.clear()
        time.sleep(2.2)  # (the second back-off)
        assert {r.outcome for r in up.run_once()} == {UploadOutcome.RETRY}
        said = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert [r.getMessage().split(" after ")[0] for r in said] == [
            f"central at {central.url} reachable again",
            "central refused the node's upload token (HTTP 401): check"
            " delivery.central.upload_token against the one `central node add` gave",
        ], [r.getMessage() for r in said]
