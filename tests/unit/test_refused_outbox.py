"""Violations central refused for good, on the node: outside the disk budget, their
evidence kept, and the technician's `roadwatch edge outbox refused export | retry | drop`,
each logged, bad input changing nothing."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from edge.delivery_config import CentralConfig
from edge.delivery_policy import DiskBudget
from edge.outbox import ORPHAN_AGE_S, MessageState, Outbox, OutboxFullError
from edge.outbox import EvidenceBlob as Blob
from edge.uploader import Uploader, UploadOutcome
from roadwatch.cli import main
from roadwatch.contract import ViolationEvent
from roadwatch.contract.models import EventRefusal, RefusalCode
from roadwatch.net import free_port
from tests.delivery_support import (
    BIG_BUDGET,
    outbox_site_file,
    outbox_state,
    run_cli,
    signed_event,
)


def _refuse(outbox: Outbox, event: ViolationEvent, code: RefusalCode) -> None:
    [wire] = [m.payload for m in outbox.due_messages(100) if m.id == event.event_id]
    outbox.mark_published([event.event_id])
    refusal = EventRefusal(
        event_id=event.event_id,
        payload_sha256=hashlib.sha256(wire).hexdigest(),
        code=code,
        reason=f"{code.value}: the reason central gave",
    )
    assert outbox.mark_refused([refusal]) == 1


def _stored(outbox: Outbox, n: int) -> list[tuple[ViolationEvent, list[Blob]]]:
    out = []
    for _ in range(n):
        event, blobs = signed_event()
        outbox.put_violation(event, blobs)
        out.append((event, blobs))
    return out


def test_refused_violations_do_not_count_against_the_disk_budget(tmp_path: Path) -> None:
    """A full outbox whose events central refused for good took no newer violation, as
    long as they were kept (for ever); now they are held outside the budget, and count in
    it again once queued for delivery again."""
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        [(event, _blobs)] = _stored(outbox, 1)
        used = outbox.used_bytes()
    budget = DiskBudget(limit_bytes=used + 10, event_reserve_bytes=0)
    with Outbox(tmp_path / "outbox", budget) as outbox:
        newer, newer_blobs = signed_event()
        with pytest.raises(OutboxFullError):
            outbox.put_violation(newer, newer_blobs)
        _refuse(outbox, event, RefusalCode.FORGED)
        assert outbox.used_bytes() == 0
        assert outbox.refused_bytes() == used
        outbox.put_violation(newer, newer_blobs)
        assert outbox.message_state(newer.event_id) is MessageState.PENDING
        assert outbox.retry_refused([event.event_id], actor="test") == [event.event_id]
        assert outbox.used_bytes() == 2 * used and outbox.refused_bytes() == 0


def test_a_refused_violation_s_evidence_stays_on_the_node_until_it_is_retried(
    tmp_path: Path,
) -> None:
    """Its blobs are not uploaded (and so deleted here) while it is refused: they stay for
    its export, and go once it is queued again; a blob another event lists still goes."""
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        [(refused, blobs), _fine] = _stored(outbox, 2)
        shared_event, _ = signed_event([blobs[0]])
        outbox.put_violation(shared_event, [blobs[0]])
        _refuse(outbox, refused, RefusalCode.NOT_CANONICAL)
        due = {b.sha256 for b in outbox.due_blobs(100)}
        assert blobs[0].ref.sha256 in due  # (listed by another event too)
        assert blobs[1].ref.sha256 not in due
        outbox.retry_refused(None, actor="test")
        assert blobs[1].ref.sha256 in {b.sha256 for b in outbox.due_blobs(100)}


# ----------------------------------------------------------------------------- the CLI


@pytest.fixture
def refused_outbox(tmp_path: Path) -> tuple[Path, list[ViolationEvent], ViolationEvent]:
    """A node's outbox with two violations refused for good and one awaiting a receipt."""
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        stored = _stored(outbox, 3)
        refused = [stored[0][0], stored[1][0]]
        _refuse(outbox, refused[0], RefusalCode.FORGED)
        _refuse(outbox, refused[1], RefusalCode.PAST)
        outbox.mark_published([stored[2][0].event_id])
    return outbox_site_file(tmp_path), refused, stored[2][0]


def test_export_writes_each_refused_violation_with_its_evidence_and_logs_it(
    refused_outbox: tuple[Path, list[ViolationEvent], ViolationEvent],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config, refused, _pending = refused_outbox
    out_dir = tmp_path / "export"
    code, out, err = run_cli(
        capsys, "edge", "outbox", "refused", "export", str(out_dir), "--config", str(config)
    )
    assert (code, err) == (0, "")
    assert "2 refused violation(s) exported" in out
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(e.event_id for e in refused)
    for event in refused:
        folder = out_dir / event.event_id
        assert ViolationEvent.model_validate_json((folder / "event.json").read_bytes()) == event
        record = json.loads((folder / "refusal.json").read_text(encoding="utf-8"))
        assert record["refused_by_central"]["code"] in ("forged", "from_the_past")
        for ref in event.evidence:
            [entry] = [e for e in record["evidence"] if e["role"] == ref.role.value]
            data = (folder / entry["file"]).read_bytes()
            assert (hashlib.sha256(data).hexdigest(), entry["sha256"]) == (ref.sha256,) * 2
    # The listing says so, with the action log; the outbox keeps them.
    code, out, _ = run_cli(capsys, "edge", "outbox", "--config", str(config))
    assert code == 0
    assert "refused by central 2 (kept, not sent again)" in out
    assert "bytes on disk outside the budget" in out
    for event in refused:
        assert f"export {event.event_id} by " in out
        assert f" to {out_dir.resolve() / event.event_id})" in out
    # Again into the same folder: refused, nothing written or changed.
    before = outbox_state(tmp_path / "outbox")
    code, _, err = run_cli(
        capsys, "edge", "outbox", "--config", str(config), "refused", "export", str(out_dir)
    )
    assert code == 2 and "already holds" in err and "nothing was exported" in err
    assert outbox_state(tmp_path / "outbox") == before


def test_export_into_a_folder_that_cannot_be_written_changes_nothing(
    refused_outbox: tuple[Path, list[ViolationEvent], ViolationEvent],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config, _refused, _pending = refused_outbox
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("x", encoding="utf-8")
    before = outbox_state(tmp_path / "outbox")
    code, out, err = run_cli(
        capsys, "edge", "outbox", "refused", "export", str(not_a_folder / "export"),
        "--config", str(config),
    )  # fmt: skip
    assert (code, out) == (2, "")
    assert err.startswith("roadwatch: error: cannot create ") and "nothing was exported" in err
    assert outbox_state(tmp_path / "outbox") == before
    # An export that fails half-way (the disk full on the second event) leaves nothing.
    out_dir = tmp_path / "export"
    real = Outbox._export_one
    calls = []

    def fails_second(self: Outbox, *args: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return real(self, *args)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Outbox, "_export_one", fails_second)
        code, _, err = run_cli(
            capsys, "edge", "outbox", "refused", "export", str(out_dir), "--config", str(config)
        )
    assert code == 2 and "No space left on device" in err
    assert list(out_dir.iterdir()) == []
    assert outbox_state(tmp_path / "outbox") == before


def test_retry_queues_a_refused_violation_for_delivery_again(
    refused_outbox: tuple[Path, list[ViolationEvent], ViolationEvent],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config, refused, pending = refused_outbox
    before = outbox_state(tmp_path / "outbox")
    for bad in (refused[0].event_id + "0", pending.event_id):  # unknown; not refused
        code, _, err = run_cli(
            capsys, "edge", "outbox", "refused", "retry", "--id", refused[1].event_id,
            "--id", bad, "--config", str(config),
        )  # fmt: skip
        assert code == 2 and f"not a violation refused by central in this outbox: {bad}" in err
        assert outbox_state(tmp_path / "outbox") == before
    with pytest.raises(SystemExit):  # (neither --id nor --all: argparse says so)
        main(["edge", "outbox", "refused", "retry", "--config", str(config)])
    assert outbox_state(tmp_path / "outbox") == before
    code, out, _ = run_cli(
        capsys, "edge", "outbox", "refused", "retry", "--id", refused[0].event_id,
        "--config", str(config),
    )  # fmt: skip
    assert code == 0 and f"queued {refused[0].event_id} for delivery again" in out
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        assert [m.id for m in outbox.due_messages(10)] == [refused[0].event_id]
        assert [r.event_id for r in outbox.refused_events()] == [refused[1].event_id]
        [(_at, action, event_id, detail, _who)] = outbox.refused_actions()
    assert (action, event_id) == ("retry", refused[0].event_id)
    assert detail.startswith("was forged: forged: the reason central gave")


def test_drop_needs_yes_and_an_export_and_removes_the_event_and_its_evidence(
    refused_outbox: tuple[Path, list[ViolationEvent], ViolationEvent],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config, refused, pending = refused_outbox
    outbox_dir = tmp_path / "outbox"
    before = outbox_state(outbox_dir)
    drop = ("edge", "outbox", "refused", "drop", "--config", str(config))
    code, _, err = run_cli(capsys, *drop, "--all")
    assert code == 2 and "add --yes to confirm" in err and "nothing was dropped" in err
    code, _, err = run_cli(capsys, *drop, "--all", "--yes")
    assert code == 2 and "not exported yet: " in err and "nothing was dropped" in err
    assert refused[0].event_id in err
    code, _, err = run_cli(capsys, *drop, "--id", "not-an-event", "--yes")
    assert code == 2 and "not-an-event" in err
    assert outbox_state(outbox_dir) == before
    assert run_cli(capsys, "edge", "outbox", "refused", "export", str(tmp_path / "x"),
                "--id", refused[0].event_id, "--config", str(config))[0] == 0  # fmt: skip
    code, out, err = run_cli(capsys, *drop, "--id", refused[0].event_id, "--yes")
    assert (code, err) == (0, "")
    assert f"dropped {refused[0].event_id}" in out and "with 2 evidence file(s)" in out
    with Outbox(outbox_dir, BIG_BUDGET) as outbox:
        assert outbox.message_state(refused[0].event_id) is None
        assert [r.event_id for r in outbox.refused_events()] == [refused[1].event_id]
        assert outbox.message_state(pending.event_id) is MessageState.PUBLISHED
        for ref in refused[0].evidence:
            assert not outbox.blob_path(ref.sha256).exists()
        for ref in refused[1].evidence + pending.evidence:
            assert outbox.blob_path(ref.sha256).exists()
        actions = [(a, e) for _t, a, e, _d, _w in outbox.refused_actions()]
    assert actions[:2] == [("drop", refused[0].event_id), ("export", refused[0].event_id)]
    # One never exported goes only when said so.
    code, out, _ = run_cli(capsys, *drop, "--all", "--yes", "--not-exported")
    assert code == 0 and f"dropped {refused[1].event_id}" in out
    code, out, _ = run_cli(capsys, "edge", "outbox", "--config", str(config))
    assert "refused by central 0" in out
    assert f"drop {refused[1].event_id} by " in out and "dropped without an export" in out


def test_an_outbox_from_before_the_exports_keeps_its_refused_violations(tmp_path: Path) -> None:
    """An outbox whose refused table has no export columns gets them, its rows kept."""
    (tmp_path / "outbox").mkdir()
    with sqlite3.connect(tmp_path / "outbox" / "outbox.sqlite3") as db:
        db.execute(
            "CREATE TABLE refused (event_id TEXT PRIMARY KEY, code TEXT NOT NULL,"
            " reason TEXT NOT NULL, refused_at REAL NOT NULL)"
        )
        db.execute("INSERT INTO refused VALUES ('e1', 'revoked_key', 'rotated', 5.0)")
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        [held] = outbox.refused_events()
    assert (held.event_id, held.code, held.exported_at, held.exported_to) == (
        "e1", "revoked_key", None, None,
    )  # fmt: skip


def test_an_export_stopped_half_way_by_ctrl_c_leaves_nothing_written(
    refused_outbox: tuple[Path, list[ViolationEvent], ViolationEvent],
    tmp_path: Path,
) -> None:
    """All or none also when the technician stops it (Ctrl-C) between two events: the
    first event's folder went unmarked in the outbox, and a second export into the same
    folder was refused as already holding it."""
    config, refused, _pending = refused_outbox
    before = outbox_state(tmp_path / "outbox")
    out_dir = tmp_path / "export"
    real = Outbox._export_one
    calls = []

    def stopped_at_second(self: Outbox, *args: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Outbox, "_export_one", stopped_at_second)
        code = main(["edge", "outbox", "refused", "export", str(out_dir), "--config", str(config)])
    assert (code, len(calls)) == (130, 2)
    assert list(out_dir.iterdir()) == []
    assert outbox_state(tmp_path / "outbox") == before
    # Run again, it exports both into the same folder.
    assert main(["edge", "outbox", "refused", "export", str(out_dir), "--config", str(config)]) == 0
    assert sorted(p.name for p in out_dir.iterdir()) == sorted(e.event_id for e in refused)


def _refusal_of(wire: bytes, event: ViolationEvent, reason: str) -> EventRefusal:
    return EventRefusal(
        event_id=event.event_id,
        payload_sha256=hashlib.sha256(wire).hexdigest(),
        code=RefusalCode.FORGED,
        reason=reason,
    )


def test_a_refusal_told_late_does_not_undo_the_technician_s_retry(tmp_path: Path) -> None:
    """Central refused two copies of a violation (a re-send crossed the first refusal); the
    second refusal came after the technician's `refused retry`, and marked the violation
    queued again refused again, with the old reason, before it was ever sent again. A
    refusal now counts only once the violation was published after the retry."""
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        [(event, _blobs)] = _stored(outbox, 1)
        [wire] = [m.payload for m in outbox.due_messages(10)]
        outbox.mark_published([event.event_id])
        first = _refusal_of(wire, event, "the first copy: a key central lacked")
        second = _refusal_of(wire, event, "the second copy: a key central lacked")
        assert outbox.mark_refused([first]) == 1
        assert outbox.retry_refused([event.event_id], actor="test") == [event.event_id]

        assert outbox.mark_refused([second]) == 0  # (it answers the copies sent before)
        assert outbox.refused_events() == []
        assert outbox.message_state(event.event_id) is MessageState.PENDING
        assert [m.id for m in outbox.due_messages(10)] == [event.event_id]

    # Still so after a restart; once sent again, central's answer to it counts.
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        assert outbox.mark_refused([second]) == 0
        outbox.mark_published([event.event_id])
        again = _refusal_of(wire, event, "refused again after the retry")
        assert outbox.mark_refused([again]) == 1
        [held] = outbox.refused_events()
        assert held.reason == "refused again after the retry"
        assert outbox.due_messages(10) == []


def test_an_outbox_from_before_retries_were_told_apart_takes_its_column(tmp_path: Path) -> None:
    """An outbox whose messages table predates ``retried_unsent`` gets it, its rows kept."""
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        [(event, _blobs)] = _stored(outbox, 1)
    with sqlite3.connect(tmp_path / "outbox" / "outbox.sqlite3") as db:
        db.execute("ALTER TABLE messages DROP COLUMN retried_unsent")
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        [wire] = [m.payload for m in outbox.due_messages(10)]
        outbox.mark_published([event.event_id])
        assert outbox.mark_refused([_refusal_of(wire, event, "old")]) == 1
        outbox.retry_refused(None, actor="test")
        assert outbox.mark_refused([_refusal_of(wire, event, "late")]) == 0


def _blob_deletes(outbox_dir: Path) -> list[str]:
    with sqlite3.connect(outbox_dir / "outbox.sqlite3") as db:
        return [r[0] for r in db.execute("SELECT sha256 FROM blob_deletes")]


def test_a_drop_stopped_among_its_file_deletes_leaves_no_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The evidence files go after the drop's commit: a Ctrl-C (or a kill) among them left
    files no row listed, outside any budget, until a start found them ten minutes old. The
    files to remove are noted in that commit, and the next open removes them, except one
    a newer event stored again meanwhile."""
    outbox_dir = tmp_path / "outbox"
    real_unlink = Path.unlink
    removed: list[Path] = []

    def stopped_after_one(path: Path, missing_ok: bool = False) -> None:
        if path.parent.parent == outbox_dir / "blobs" and removed:
            raise KeyboardInterrupt
        removed.append(path)
        real_unlink(path, missing_ok=missing_ok)

    with Outbox(outbox_dir, BIG_BUDGET) as outbox:
        [(dropped, blobs), (kept, _kept_blobs)] = _stored(outbox, 2)
        extra, extra_blobs = signed_event()
        outbox.put_violation(extra, extra_blobs)
        for event in (dropped, extra):
            _refuse(outbox, event, RefusalCode.FORGED)
        files = {ref.sha256: outbox.blob_path(ref.sha256) for ref in dropped.evidence}
        files |= {ref.sha256: outbox.blob_path(ref.sha256) for ref in extra.evidence}
        with monkeypatch.context() as patched:
            patched.setattr(Path, "unlink", stopped_after_one)
            with pytest.raises(KeyboardInterrupt):
                outbox.drop_refused(None, actor="test", not_exported=True)
        assert outbox.refused_events() == []  # (the rows went: the drop committed)
        assert len(removed) == 1 and sum(p.exists() for p in files.values()) == 3
        # A newer violation lists one of the files still there: it stays.
        again = next(b for b in blobs if files[b.ref.sha256].exists())
        newer, _ = signed_event([again])
        outbox.put_violation(newer, [again])

    with Outbox(outbox_dir, BIG_BUDGET) as outbox:
        assert [p for p in files.values() if p.exists()] == [files[again.ref.sha256]]
        assert again.ref.sha256 in {b.sha256 for b in outbox.due_blobs(100)}
        for ref in kept.evidence:
            assert outbox.blob_path(ref.sha256).exists()
    assert _blob_deletes(outbox_dir) == []


def test_a_dropped_evidence_file_that_cannot_be_removed_goes_at_the_next_drop(
    refused_outbox: tuple[Path, list[ViolationEvent], ViolationEvent],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A delete the disk refused (permissions) ended the drop with a traceback after its
    commit, the other files left too; now the others go, the drop says how many are left,
    and the next drop (or open) removes them."""
    config, refused, pending = refused_outbox
    outbox_dir = tmp_path / "outbox"
    with Outbox(outbox_dir, BIG_BUDGET) as outbox:
        first = [outbox.blob_path(ref.sha256) for ref in refused[0].evidence]
        second = [outbox.blob_path(ref.sha256) for ref in refused[1].evidence]
    real_unlink = Path.unlink

    def refused_delete(path: Path, missing_ok: bool = False) -> None:
        if path == first[0]:
            raise PermissionError(13, "Permission denied", str(path))
        real_unlink(path, missing_ok=missing_ok)

    drop = ("edge", "outbox", "refused", "drop", "--yes", "--not-exported", "--config", str(config))
    with monkeypatch.context() as patched:
        patched.setattr(Path, "unlink", refused_delete)
        code, out, _ = run_cli(capsys, *drop, "--id", refused[0].event_id)
    assert code == 0 and f"dropped {refused[0].event_id}" in out
    assert "1 dropped evidence file(s) could not be removed yet" in out
    assert first[0].exists() and not first[1].exists()
    assert _blob_deletes(outbox_dir) == [first[0].name]

    code, out, _ = run_cli(capsys, *drop, "--id", refused[1].event_id)
    assert code == 0 and "could not be removed" not in out
    assert not any(p.exists() for p in first + second)
    assert _blob_deletes(outbox_dir) == []
    with Outbox(outbox_dir, BIG_BUDGET) as outbox:
        assert outbox.message_state(pending.event_id) is MessageState.PUBLISHED
        for ref in pending.evidence:
            assert outbox.blob_path(ref.sha256).exists()


def test_a_drop_while_a_new_violation_stores_the_same_evidence_keeps_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Evidence files are shared by their hash. The node stored a new violation listing a
    refused one's files while the technician's drop (another process) removed that one:
    the store found the files there and did not write them, the drop deleted them (no row
    listed them yet), and the store's rows then listed files gone, marked broken at their
    upload. The store now finds its files and lists them under the write lock the drop
    deletes under: the drop waits for it and keeps the files."""
    outbox_dir = tmp_path / "outbox"
    with Outbox(outbox_dir, BIG_BUDGET) as node, Outbox(outbox_dir, BIG_BUDGET) as technician:
        # (the drop gives up at once where it would wait for the node's write)
        technician._db.execute("PRAGMA busy_timeout = 50")
        [(refused, blobs)] = _stored(node, 1)
        _refuse(node, refused, RefusalCode.FORGED)
        newer, _ = signed_event(blobs)
        real_write = node._write_blob
        drops: list[object] = []

        def write_then_drop(blob: Blob) -> bool:
            wrote = real_write(blob)
            if not drops:
                try:
                    drops.append(
                        technician.drop_refused([refused.event_id], actor="test", not_exported=True)
                    )
                except sqlite3.OperationalError as exc:  # (the store holds the write lock)
                    drops.append(exc)
            return wrote

        monkeypatch.setattr(node, "_write_blob", write_then_drop)
        node.put_violation(newer, blobs)
        if isinstance(drops[0], sqlite3.OperationalError):
            technician.drop_refused([refused.event_id], actor="test", not_exported=True)
        assert technician.refused_events() == []
        for b in blobs:
            assert node.blob_path(b.ref.sha256).read_bytes() == b.data
        assert {b.sha256 for b in node.due_blobs(100)} == {b.ref.sha256 for b in blobs}
        progress = node.evidence_progress(newer.event_id)
        assert progress.total == len(blobs) and progress.broken == 0
    assert _blob_deletes(outbox_dir) == []


def test_the_sweep_at_open_keeps_a_file_a_new_violation_lists_since(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file no row lists, ten minutes old, goes when the outbox opens. `edge outbox`
    opening it read the rows, then the node stored a violation listing that very file
    (found there, so not written again), and the sweep deleted it. The sweep looks each
    file up again under the write lock the store lists it under."""
    outbox_dir = tmp_path / "outbox"
    newer, blobs = signed_event()
    old = time.time() - ORPHAN_AGE_S - 60
    with Outbox(outbox_dir, BIG_BUDGET) as node:
        for b in blobs:  # (left by a process killed before its rows committed)
            path = node.blob_path(b.ref.sha256)
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(b.data)
            os.utime(path, (old, old))
        real_stat = Path.stat
        stored: list[bool] = []

        def stat_then_stored(path: Path, **kwargs: Any) -> os.stat_result:
            if path.parent.parent == outbox_dir / "blobs" and not stored:
                stored.append(True)  # (the sweep has read the rows: the node stores now)
                node.put_violation(newer, blobs)
            return real_stat(path, **kwargs)

        with monkeypatch.context() as patched:
            patched.setattr(Path, "stat", stat_then_stored)
            Outbox(outbox_dir, BIG_BUDGET).close()
        assert stored
        for b in blobs:
            assert node.blob_path(b.ref.sha256).read_bytes() == b.data
        assert {b.sha256 for b in node.due_blobs(100)} == {b.ref.sha256 for b in blobs}


def test_an_upload_that_read_a_dropped_file_does_not_break_it_stored_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The uploader had a violation's evidence in hand when central refused that violation
    and the technician dropped it; its read found the file gone, and before it marked the
    blob broken a new violation stored the same evidence again: the new violation's
    evidence was marked broken, never uploaded. The outbox reads the file again before
    marking it: the blob stays pending, uploaded at the next try."""
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        [(dropped, blobs)] = _stored(outbox, 1)
        [in_hand, *_] = outbox.due_blobs(100)
        _refuse(outbox, dropped, RefusalCode.FORGED)
        outbox.drop_refused(None, actor="test", not_exported=True)
        assert not in_hand.path.exists()
        newer, _ = signed_event(blobs)
        real_read = Path.read_bytes
        stored: list[bool] = []

        def read_then_stored(path: Path) -> bytes:
            try:
                return real_read(path)
            finally:
                if path == in_hand.path and not stored:
                    stored.append(True)
                    outbox.put_violation(newer, blobs)

        config = CentralConfig.model_validate(
            {"url": f"http://127.0.0.1:{free_port()}", "upload_token": "t", "timeout_s": 1}
        )
        uploader = Uploader.from_config(outbox, config)
        with monkeypatch.context() as patched:
            patched.setattr(Path, "read_bytes", read_then_stored)
            result = uploader.upload(in_hand)
        assert stored
        assert result.outcome is UploadOutcome.RETRY
        assert outbox.broken_blobs() == []
        assert outbox.evidence_progress(newer.event_id).broken == 0
        assert in_hand.sha256 in {b.sha256 for b in outbox.due_blobs(100)}


def test_an_evidence_file_missing_when_looked_at_again_is_marked_broken(
    tmp_path: Path,
) -> None:
    """A file missing (or changed) on disk is still marked broken, its events named."""
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        [(event, blobs)] = _stored(outbox, 1)
        gone, changed = (outbox.blob_path(b.ref.sha256) for b in blobs)
        gone.unlink()
        changed.write_bytes(b"not what was stored")
        config = CentralConfig.model_validate(
            {"url": f"http://127.0.0.1:{free_port()}", "upload_token": "t", "timeout_s": 1}
        )
        results = Uploader.from_config(outbox, config).run_once()
        assert {r.outcome for r in results} == {UploadOutcome.BROKEN}
        assert {b.sha256: b.event_ids for b in outbox.broken_blobs()} == {
            b.ref.sha256: (event.event_id,) for b in blobs
        }
