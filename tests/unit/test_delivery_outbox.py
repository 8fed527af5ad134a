from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.delivery_policy import DiskBudget
from edge.outbox import MessageState, Outbox, OutboxFullError, file_sha256
from roadwatch.contract import EvidenceRole, ViolationEvent, parse_payload
from tests.delivery_support import BIG_BUDGET, REPO, blob, signed_event, subprocess_env
from tests.factories import T0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_event_and_blobs_are_stored_before_sending(tmp_path: Path) -> None:
    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        event, blobs = signed_event()
        outbox.put_violation(event, blobs)
        [message] = outbox.due_messages(10)
        assert message.id == event.event_id
        assert message.topic == "roadwatch/v1/ql13-km22/node-01/cam-01/violation"
        assert parse_payload(ViolationEvent, message.payload) == event
        pending = {b.sha256: b for b in outbox.due_blobs(10)}
        assert set(pending) == {b.ref.sha256 for b in blobs}
        for b in blobs:
            assert file_sha256(pending[b.ref.sha256].path) == b.ref.sha256
        # Storing the same event again changes nothing.
        outbox.put_violation(event, blobs)
        assert outbox.stats().pending == 1


def test_unsigned_or_mismatched_events_are_refused(tmp_path: Path) -> None:
    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        event, blobs = signed_event()
        with pytest.raises(ValueError, match="not signed"):
            outbox.put_violation(event.model_copy(update={"signature": None}), blobs)
        with pytest.raises(ValueError, match="differ from its evidence list"):
            outbox.put_violation(event, blobs[:1])
        tampered = [blobs[0], type(blobs[1])(ref=blobs[1].ref, data=b"x" * blobs[1].ref.size)]
        with pytest.raises(ValueError, match="does not match its hash"):
            outbox.put_violation(event, tampered)
        assert outbox.stats().pending == 0


def test_a_clock_set_back_does_not_hold_back_retries_for_as_long(tmp_path: Path) -> None:
    """Failures back off while the clock is two hours ahead; NTP then sets it right. The
    retries (a message, a blob, a receipt re-send) are due at once, not in two hours."""
    clock = FakeClock()
    clock.now += 7200.0
    with Outbox(tmp_path, BIG_BUDGET, clock=clock, retry_base_s=2.0, retry_cap_s=60) as outbox:
        event, blobs = signed_event()
        outbox.put_violation(event, blobs)
        other, _ = signed_event([])
        outbox.put_violation(other, [])
        outbox.record_publish_failure([event.event_id], "no PUBACK")
        outbox.record_blob_failure(blobs[0].ref.sha256, "central down")
        outbox.mark_published([other.event_id])
        failed = blobs[0].ref.sha256
        assert outbox.due_messages(10) == [] and outbox.due_resends(10) == []
        assert failed not in [b.sha256 for b in outbox.due_blobs(10)]
        clock.now -= 7200.0
        assert [m.id for m in outbox.due_messages(10)] == [event.event_id]
        assert failed in [b.sha256 for b in outbox.due_blobs(10)]
        assert [m.id for m in outbox.due_resends(10)] == [other.event_id]


def test_published_is_kept_until_receipted(tmp_path: Path) -> None:
    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        event, blobs = signed_event()
        outbox.put_violation(event, blobs)
        assert outbox.mark_published([event.event_id]) == 1
        assert outbox.message_state(event.event_id) is MessageState.PUBLISHED
        assert outbox.due_messages(10) == []
        assert outbox.stats().published == 1
        assert outbox.mark_receipted([event.event_id]) == 1
        assert outbox.message_state(event.event_id) is MessageState.RECEIPTED


def test_failed_publish_backs_off_exponentially(tmp_path: Path) -> None:
    clock = FakeClock()
    with Outbox(tmp_path, BIG_BUDGET, clock=clock, retry_base_s=2.0, retry_cap_s=60) as outbox:
        event, blobs = signed_event()
        outbox.put_violation(event, blobs)
        waits = []
        for _ in range(4):
            [message] = outbox.due_messages(1)
            start = clock.now
            outbox.record_publish_failure([message.id], "no PUBACK")
            while not outbox.due_messages(1):
                clock.now += 0.5
            waits.append(clock.now - start)
        assert waits == [2.0, 4.0, 8.0, 16.0]
        assert outbox.due_messages(1)[0].attempts == 4


def test_violations_go_before_traffic(tmp_path: Path) -> None:
    from roadwatch.contract import TrafficStats

    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        stats = TrafficStats(
            site="s", node="n", camera="c", minute_start=T0.replace(second=0, microsecond=0)
        )
        outbox.put_traffic(stats)
        outbox.put_traffic(stats)  # the same minute is stored once
        event, blobs = signed_event()
        outbox.put_violation(event, blobs)
        assert [m.kind.value for m in outbox.due_messages(10)] == ["violation", "traffic"]


def test_each_part_of_a_traffic_minute_is_kept(tmp_path: Path) -> None:
    """A minute begun again within it (the node restarted, its lanes changed) is a second
    part of it, stored beside the first, not taken for the first stored again."""
    from datetime import timedelta

    from roadwatch.contract import TrafficStats

    minute = T0.replace(second=0, microsecond=0)
    parts = [
        TrafficStats(site="s", node="n", camera="c", minute_start=minute, counted_from=start)
        for start in (None, minute + timedelta(seconds=20), minute + timedelta(seconds=41))
    ]
    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        for part in parts + parts:
            outbox.put_traffic(part)
        sent = [TrafficStats.model_validate_json(m.payload) for m in outbox.due_messages(10)]
    assert sorted(s.part_start for s in sent) == [p.part_start for p in parts]


def test_traffic_minutes_not_sent_are_signed_again_with_the_node_key_now(tmp_path: Path) -> None:
    """After a key rotation the old key may be revoked: the minutes not sent yet that the
    node key now did not sign (the old key's, or stored unsigned) are signed again with
    it; those it signed, and those sent already, are left as they are."""
    from edge.outbox import DATABASE_NAME
    from roadwatch.contract import TrafficStats
    from roadwatch.contract.signing import generate_private_key, sign, verify

    old, new = generate_private_key(), generate_private_key()
    minute = T0.replace(second=0, microsecond=0)

    def stats(camera: str) -> TrafficStats:
        return TrafficStats(site="s", node="n", camera=camera, minute_start=minute)

    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        outbox.put_traffic(sign(stats("sent"), old))
        [sent] = outbox.due_messages(10)
        outbox.mark_published([sent.id])
        outbox.put_traffic(sign(stats("old-key"), old))
        outbox.put_traffic(stats("unsigned"))
        outbox.put_traffic(sign(stats("new-key"), new))
        kept = {m.id: m.payload for m in outbox.due_messages(10)}
        assert outbox.sign_pending_traffic(new) == 2
        assert outbox.sign_pending_traffic(new) == 0  # (all its own now)
        due = {
            TrafficStats.model_validate_json(m.payload).camera: m for m in outbox.due_messages(10)
        }
        assert sorted(due) == ["new-key", "old-key", "unsigned"]
        for camera, message in due.items():
            minute_now = TrafficStats.model_validate_json(message.payload)
            verify(minute_now, new.public_key())
            assert minute_now.model_copy(update={"signature": None}) == stats(camera)
        assert due["new-key"].payload == kept[due["new-key"].id]
        with sqlite3.connect(tmp_path / DATABASE_NAME) as db:
            [(payload,)] = db.execute("SELECT payload FROM messages WHERE state != 'pending'")
        verify(TrafficStats.model_validate_json(payload), old.public_key())  # sent: as it was


def test_the_latest_traffic_minute_held_of_a_camera_is_its_own(tmp_path: Path) -> None:
    """What a node started again counts on from: the latest minute of the camera, part or
    whole, sent or not; never another camera's (one whose id begins with it, too), site's
    or node's."""
    from datetime import timedelta

    from roadwatch.contract import TrafficStats

    minute = T0.replace(second=0, microsecond=0)

    def stats(camera: str, at: int, part: bool = False, site: str = "s") -> TrafficStats:
        start = minute + timedelta(minutes=at)
        counted_from = start + timedelta(seconds=7) if part else None
        return TrafficStats(
            site=site, node="n", camera=camera, minute_start=start, counted_from=counted_from
        )

    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        assert outbox.latest_traffic_minute("s", "n", "c") is None
        for held in (stats("c", 9), stats("c", 15, part=True), stats("c", 3), stats("c", 15)):
            outbox.put_traffic(held)
        for other in (stats("c2", 40), stats("b", 41), stats("c", 42, site="t")):
            outbox.put_traffic(other)
        [first] = outbox.due_messages(1)
        outbox.mark_published([first.id])
        assert outbox.latest_traffic_minute("s", "n", "c") == minute + timedelta(minutes=15)
        assert outbox.latest_traffic_minute("s", "n", "c2") == minute + timedelta(minutes=40)
        assert outbox.latest_traffic_minute("s", "m", "c") is None


def test_a_cameras_fined_places_are_kept_whole_and_as_its_own(tmp_path: Path) -> None:
    """The places of a camera's no-stopping fines, for a node started again (a new one
    opening the outbox): each write replaces the camera's places whole (none: it has none
    now); never another camera's, site's or node's. Not counted against the disk budget."""
    from edge.rules.geometry import Point
    from edge.rules.no_stopping import FinedPlace

    def place(x: float, last_t: float) -> FinedPlace:
        return FinedPlace(Point(x, 412.5), (960, 540), last_t)

    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        assert outbox.fined_places("s", "n", "c") == []
        outbox.put_fined_places("s", "n", "c", [place(100, 1.0)])
        outbox.put_fined_places("s", "n", "c", [place(100, 6.0), place(300.25, 5.5)])
        outbox.put_fined_places("s", "n", "c2", [place(700, 2.0)])
        outbox.put_fined_places("t", "n", "c", [place(800, 3.0)])
        outbox.put_fined_places("s", "m", "c", [place(900, 4.0)])
        assert outbox.used_bytes() == 0
    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        assert outbox.fined_places("s", "n", "c") == [place(100, 6.0), place(300.25, 5.5)]
        assert outbox.fined_places("s", "n", "c2") == [place(700, 2.0)]
        outbox.put_fined_places("s", "n", "c", [])
        assert outbox.fined_places("s", "n", "c") == []
        assert outbox.fined_places("t", "n", "c") == [place(800, 3.0)]
        assert outbox.fined_places("s", "m", "c") == [place(900, 4.0)]


def test_disk_limit_refuses_blobs_then_events_never_silently(tmp_path: Path) -> None:
    # Each event's payload is about 1,000 bytes.
    budget = DiskBudget(limit_bytes=10_000, event_reserve_bytes=3_000, alarm_fraction=0.6)
    with Outbox(tmp_path, budget) as outbox:
        first, first_blobs = signed_event([blob(EvidenceRole.CLIP, b"c" * 4_000)])
        outbox.put_violation(first, first_blobs)
        assert not outbox.stats().alarm
        second, second_blobs = signed_event([blob(EvidenceRole.CLIP, b"d" * 3_500)])
        outbox.put_violation(second, second_blobs)
        assert outbox.stats().alarm
        third, third_blobs = signed_event([blob(EvidenceRole.CLIP, b"e" * 3_000)])
        with pytest.raises(OutboxFullError, match="do not fit"):
            outbox.put_violation(third, third_blobs)
        assert outbox.message_state(third.event_id) is None
        # Without its evidence the event still fits, in the reserve.
        bare, _ = signed_event([])
        outbox.put_violation(bare, [])
        assert outbox.message_state(bare.event_id) is MessageState.PENDING
        assert outbox.used_bytes() > budget.limit_bytes
        # Uploading frees the space again.
        outbox.mark_blob_uploaded(first_blobs[0].ref.sha256)
        outbox.mark_blob_uploaded(second_blobs[0].ref.sha256)
        outbox.put_violation(third, third_blobs)


def test_broken_blob_makes_its_event_never_complete(tmp_path: Path) -> None:
    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        event, blobs = signed_event()
        outbox.put_violation(event, blobs)
        assert outbox.evidence_progress(event.event_id).total == 2
        outbox.mark_blob_uploaded(blobs[0].ref.sha256)
        assert not outbox.evidence_progress(event.event_id).complete
        assert outbox.mark_blob_broken(blobs[1].ref.sha256, "changed on disk") == [event.event_id]
        progress = outbox.evidence_progress(event.event_id)
        assert (progress.uploaded, progress.broken, progress.complete) == (1, 1, False)
        assert outbox.due_blobs(10) == []


def test_state_survives_reopening(tmp_path: Path) -> None:
    event, blobs = signed_event()
    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        outbox.put_violation(event, blobs)
        outbox.mark_blob_uploaded(blobs[0].ref.sha256)
    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        assert [m.id for m in outbox.due_messages(10)] == [event.event_id]
        assert [b.sha256 for b in outbox.due_blobs(10)] == [blobs[1].ref.sha256]
        assert not outbox.blob_path(blobs[0].ref.sha256).exists()


def test_kill_9_mid_write_loses_nothing_that_was_stored(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.delivery_writer", str(tmp_path)],
        stdout=subprocess.PIPE,
        cwd=REPO,
        env=subprocess_env(),
    )
    assert proc.stdout is not None
    stored: list[str] = []
    try:
        while len(stored) < 40:
            line = proc.stdout.readline()
            assert line, "the writer exited early"
            stored.append(line.decode().strip())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        assert outbox.integrity_ok()
        pending = {m.id: m for m in outbox.due_messages(10_000)}
        assert set(stored) <= set(pending), "an event acknowledged as stored is missing"
        for message in pending.values():
            event = parse_payload(ViolationEvent, message.payload)
            for ref in event.evidence:
                assert file_sha256(outbox.blob_path(ref.sha256)) == ref.sha256
        assert all(b.path.exists() for b in outbox.due_blobs(100_000))
        assert not list(tmp_path.glob("blobs/*/.tmp-*")), "temp files are cleaned on open"
        print(f"kill -9 after {len(stored)} stored events: {len(pending)} in the outbox, intact")


def test_evidence_files_no_row_lists_are_removed_at_start_once_old(tmp_path: Path) -> None:
    """A process killed after a blob's file was renamed into place but before its rows
    committed leaves a file that nothing counts or sends: the next start removes it, once
    it is old enough that no other process can be about to commit it."""

    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        event, blobs = signed_event()
        outbox.put_violation(event, blobs)
        listed = outbox.blob_path(blobs[0].ref.sha256)
    orphan = tmp_path / "blobs" / "ab" / ("ab" + "0" * 62)
    fresh = tmp_path / "blobs" / "cd" / ("cd" + "0" * 62)
    for path in (orphan, fresh):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"clip of a violation never stored")
    old = time.time() - 3600
    os.utime(orphan, (old, old))
    os.utime(listed, (old, old))
    with Outbox(tmp_path, BIG_BUDGET):
        assert not orphan.exists()
        assert fresh.exists() and listed.exists()


def test_usage_counter_matches_the_rows(tmp_path: Path) -> None:
    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        stored = [signed_event() for _ in range(5)]
        outbox.put_violations(stored)
        outbox.mark_blob_uploaded(stored[0][1][0].ref.sha256)
        outbox.mark_receipted([stored[1][0].event_id])
        db = outbox._db  # the figure the triggers keep, against a full recount
        payloads = db.execute(
            "SELECT SUM(length(payload)) FROM messages WHERE state != 'receipted'"
        ).fetchone()[0]
        files = db.execute("SELECT SUM(size) FROM blobs WHERE state != 'uploaded'").fetchone()[0]
        assert outbox.used_bytes() == payloads + files
        # The same blob in a later event is not stored again once central has it.
        event, _ = signed_event([stored[0][1][0]])
        outbox.put_violation(event, [stored[0][1][0]])
        assert not outbox.blob_path(stored[0][1][0].ref.sha256).exists()
        assert outbox.evidence_progress(event.event_id).complete


def test_a_batch_is_stored_whole_or_not_at_all(tmp_path: Path) -> None:
    budget = DiskBudget(limit_bytes=20_000, event_reserve_bytes=0)
    with Outbox(tmp_path, budget) as outbox:
        fits = signed_event([blob(EvidenceRole.CLIP, b"a" * 5_000)])
        too_big = signed_event([blob(EvidenceRole.CLIP, b"b" * 15_000)])
        with pytest.raises(OutboxFullError):
            outbox.put_violations([fits, too_big])
        assert outbox.stats().pending == 0 and outbox.used_bytes() == 0
        assert not list(tmp_path.glob("blobs/*/*")), "no orphan blob files"


def test_sqlite_refusing_a_write_for_want_of_room_is_a_full_outbox(tmp_path: Path) -> None:
    """SQLite's own "disk full" (SQLITE_FULL, here from a page limit set on the file): the
    violation is refused as the outbox being full, nothing of it is left, and once there
    is room again the same violation is stored."""
    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        db = outbox._db  # the outbox's own connection (what its writes go through)
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        db.execute(f"PRAGMA max_page_count = {pages}")
        stored = 0
        with pytest.raises(OutboxFullError, match="the disk is full"):  # (once pages run out)
            for n in range(100):
                clip = b"c" * 5_000 + n.to_bytes(2, "big")
                event, blobs = signed_event([blob(EvidenceRole.CLIP, clip)])
                outbox.put_violation(event, blobs)
                stored += 1
        assert outbox.message_state(event.event_id) is None
        assert not outbox.blob_path(blobs[0].ref.sha256).exists()
        assert not db.in_transaction
        db.execute("PRAGMA max_page_count = 1073741823")
        outbox.put_violation(event, blobs)
        assert outbox.message_state(event.event_id) is MessageState.PENDING
        assert outbox.stats().pending == stored + 1


def test_opening_an_outbox_leaves_a_running_writers_temp_file_alone(tmp_path: Path) -> None:
    """``edge outbox`` beside a running node opens the same outbox: the blob the node is
    writing (its temp file, named with its boot, pid and start time) stays; one of a
    process that is gone, of an earlier holder of a running pid (a node restarted as PID 1
    of a new container), of an older naming, or one left longer than ORPHAN_AGE_S goes."""

    from edge.outbox import ORPHAN_AGE_S, _temp_name

    with Outbox(tmp_path, BIG_BUDGET):
        pass
    folder = tmp_path / "blobs" / "ab"
    folder.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    mine = _temp_name("ab" + "0" * 62)
    boot, pid, started = mine.removeprefix(".tmp-").rsplit("-", 2)[0].split("~")
    assert pid == str(os.getpid())
    writing = folder / mine
    gone = folder / f".tmp-{boot}~{dead}~{started}-1-ab{'1' * 62}"
    restarted = folder / f".tmp-{boot}~{pid}~1-1-ab{'2' * 62}"
    older = folder / f".tmp-{os.getpid()}-1-ab{'3' * 62}"
    stale = folder / _temp_name("ab" + "4" * 62)
    for path in (writing, gone, restarted, older, stale):
        path.write_bytes(b"part of a clip")
    old = time.time() - ORPHAN_AGE_S - 60
    os.utime(stale, (old, old))
    with Outbox(tmp_path, BIG_BUDGET):
        assert writing.exists()
        assert not any(p.exists() for p in (gone, restarted, older, stale))


def test_a_blob_the_disk_refuses_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    def no_room(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        event, blobs = signed_event([blob(EvidenceRole.CLIP, b"c" * 50_000)])
        monkeypatch.setattr("edge.outbox.os.fsync", no_room)
        with pytest.raises(OutboxFullError, match="the disk is full"):
            outbox.put_violation(event, blobs)
        monkeypatch.undo()
        assert not list(tmp_path.glob("blobs/*/.tmp-*"))
        assert outbox.message_state(event.event_id) is None
        outbox.put_violation(event, blobs)
        assert outbox.message_state(event.event_id) is MessageState.PENDING


def test_a_damaged_outbox_database_is_named_and_left_as_it_is(tmp_path: Path) -> None:
    from roadwatch.errors import UserError

    damaged = b"not an SQLite database, but the node's events may be in what is left" * 100
    (tmp_path / "outbox.sqlite3").write_bytes(damaged)
    with pytest.raises(UserError, match=r"outbox database .*outbox\.sqlite3 cannot be used"):
        Outbox(tmp_path, BIG_BUDGET)
    assert (tmp_path / "outbox.sqlite3").read_bytes() == damaged


def test_without_proc_a_writer_is_judged_by_its_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No /proc to read (no start time, no boot id): a temp file or a ``fired`` row of a
    running process stays its own, and one of a process that is gone is left to others, by
    the pid alone."""
    from edge.outbox import _temp_name, _writer_alive

    monkeypatch.setattr("edge.outbox._started", lambda _pid: None)
    monkeypatch.setattr("edge.outbox._BOOT_ID", "unknown")
    mine = _temp_name("ab" + "0" * 62)
    assert mine.startswith(f".tmp-unknown~{os.getpid()}~--")
    assert _writer_alive(mine)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert not _writer_alive(f".tmp-unknown~{dead}~--1-ab{'1' * 62}")

    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        building, _ = signed_event([])
        outbox.put_fired(building)
        [fired] = outbox.fired()
        assert not fired.orphaned  # this process is still building its evidence
        with sqlite3.connect(tmp_path / "outbox.sqlite3") as db:
            db.execute("UPDATE fired SET owner = ?", (f"unknown {dead} -",))
        [fired] = outbox.fired()
        assert fired.orphaned


def test_the_fined_places_of_cameras_a_node_has_no_more_are_let_go(tmp_path: Path) -> None:
    """Pruned: the node's places of the cameras not named; kept: those of the cameras
    named, and every other site's or node's. With no camera named, all the node's go."""
    from edge.rules.geometry import Point
    from edge.rules.no_stopping import FinedPlace

    place = FinedPlace(Point(100, 412.5), (960, 540), 1.0)
    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        for site, node, camera in [
            ("s", "n", "c"), ("s", "n", "gone"), ("s", "n", "gone2"), ("t", "n", "gone"),
            ("s", "m", "gone"),
        ]:  # fmt: skip
            outbox.put_fined_places(site, node, camera, [place, place])
        assert outbox.prune_fined_places("s", "n", ["c", "c3"]) == 4
        assert outbox.fined_places("s", "n", "c") == [place, place]
        assert outbox.fined_places("s", "n", "gone") == []
        assert outbox.fined_places("s", "n", "gone2") == []
        assert outbox.fined_places("t", "n", "gone") == [place, place]
        assert outbox.fined_places("s", "m", "gone") == [place, place]
        assert outbox.prune_fined_places("s", "n", ["c"]) == 0
        assert outbox.prune_fined_places("s", "n", []) == 2
        assert outbox.fined_places("s", "n", "c") == []


def test_traffic_minutes_signed_again_count_at_their_new_size(tmp_path: Path) -> None:
    """An unsigned minute signed again grows by its signature: the bytes held against the
    disk budget follow, so that deleting it later does not take off more than it added."""
    from roadwatch.contract import TrafficStats
    from roadwatch.contract.signing import generate_private_key

    minute = T0.replace(second=0, microsecond=0)
    with Outbox(tmp_path, BIG_BUDGET) as outbox:
        outbox.put_traffic(TrafficStats(site="s", node="n", camera="c", minute_start=minute))
        assert outbox.sign_pending_traffic(generate_private_key()) == 1
        [message] = outbox.due_messages(10)
        assert outbox.used_bytes() == len(message.payload)
