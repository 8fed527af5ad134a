"""`roadwatch edge outbox receipted resend`: the violations central receipted, still kept
on the node, queued for delivery again after central's database was restored from a
backup; on a real outbox file, while another process holds it open."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from edge.outbox import EvidenceBlob, MessageState, Outbox
from roadwatch.contract import ViolationEvent
from tests.delivery_support import (
    BIG_BUDGET,
    outbox_site_file,
    outbox_state,
    run_cli,
    signed_event,
)

HOUR = 3600.0
NOW = float(int(time.time()))
# When central receipted the three violations of ``receipted_outbox``, oldest first.
RECEIPTED = (NOW - 3 * HOUR, NOW - 2 * HOUR, NOW - HOUR)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _iso(epoch_s: float, zone: timezone = UTC) -> str:
    return datetime.fromtimestamp(epoch_s, zone).isoformat()


def _receipt(outbox: Outbox, clock: Clock, at: float, *events: ViolationEvent) -> None:
    clock.now = at
    ids = [e.event_id for e in events]
    assert outbox.mark_published(ids) == len(ids)
    assert outbox.mark_receipted(ids) == len(ids)


def _stored(
    outbox: Outbox, blobs: list[EvidenceBlob] | None = None
) -> tuple[ViolationEvent, list[EvidenceBlob]]:
    event, evidence = signed_event(blobs)
    outbox.put_violation(event, evidence)
    return event, evidence


@pytest.fixture
def receipted_outbox(tmp_path: Path) -> tuple[Path, list[ViolationEvent], ViolationEvent]:
    """A node's outbox with three violations receipted (``RECEIPTED``), their evidence
    uploaded, and one published awaiting its receipt."""
    clock = Clock(NOW - 4 * HOUR)
    with Outbox(tmp_path / "outbox", BIG_BUDGET, clock=clock) as outbox:
        events = [_stored(outbox) for _ in range(4)]
        for _event, blobs in events:
            for b in blobs:
                outbox.mark_blob_uploaded(b.ref.sha256)
        for (event, _), at in zip(events, RECEIPTED, strict=False):
            _receipt(outbox, clock, at, event)
        outbox.mark_published([events[3][0].event_id])
    return outbox_site_file(tmp_path), [e for e, _ in events[:3]], events[3][0]


def _pending(outbox_dir: Path) -> list[str]:
    with Outbox(outbox_dir, BIG_BUDGET) as outbox:
        return sorted(m.id for m in outbox.due_messages(100))


PLUS_7 = timezone(timedelta(hours=7))


@pytest.mark.parametrize(
    ("since", "until", "resent"),
    [
        (RECEIPTED[0], None, (0, 1, 2)),
        (RECEIPTED[1], None, (1, 2)),  # at or after --since
        (RECEIPTED[1] + 1, None, (2,)),
        (RECEIPTED[0], RECEIPTED[2], (0, 1)),  # before --until
        (RECEIPTED[0] - HOUR, RECEIPTED[0], ()),
        (RECEIPTED[2] + 1, None, ()),
    ],
    ids=["all", "since-inclusive", "since-after-one", "until-exclusive", "before-all", "after-all"],
)
@pytest.mark.parametrize("zone", [UTC, PLUS_7], ids=["utc", "plus-7"])
def test_resend_queues_the_violations_receipted_in_the_span_again(
    receipted_outbox: tuple[Path, list[ViolationEvent], ViolationEvent],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    since: float,
    until: float | None,
    resent: tuple[int, ...],
    zone: timezone,
) -> None:
    config, receipted, awaiting = receipted_outbox
    span = ["--since", _iso(since, zone)] + ([] if until is None else ["--until", _iso(until)])
    # Without --yes: a dry run that says how many and their span, changing nothing.
    before = outbox_state(tmp_path / "outbox")
    code, out, err = run_cli(
        capsys, "edge", "outbox", "receipted", "resend", *span, "--config", str(config)
    )
    assert (code, err) == (0, "")
    assert f"would send {len(resent)} receipted violation(s) again" in out
    assert "add --yes to queue them" in out
    if resent:
        first, last = (_iso(RECEIPTED[resent[i]]) for i in (0, -1))
        assert f"receipted from {first} to {last}" in out
    assert outbox_state(tmp_path / "outbox") == before
    # With --yes: queued, each named.
    code, out, err = run_cli(
        capsys, "edge", "outbox", "receipted", "resend", *span, "--yes", "--config", str(config)
    )
    assert (code, err) == (0, "")
    expected = sorted(receipted[i].event_id for i in resent)
    assert f"{len(resent)} receipted violation(s) queued again" in out
    for event_id in expected:
        assert f"queued {event_id} for delivery again" in out
    assert _pending(tmp_path / "outbox") == expected  # (not the one awaiting its receipt)
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        assert outbox.message_state(awaiting.event_id) is MessageState.PUBLISHED
        assert outbox.stats().receipted == 3 - len(resent)


def test_violations_deleted_after_the_retention_are_not_on_the_node_and_it_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Receipted violations are kept receipted_retention_s (a day): one pruned is gone,
    and a --since before the retention says so."""
    clock = Clock(NOW - 3 * 86400)
    with Outbox(tmp_path / "outbox", BIG_BUDGET, clock=clock) as outbox:
        old, recent = _stored(outbox, [])[0], _stored(outbox, [])[0]
        _receipt(outbox, clock, NOW - 2 * 86400, old)
        _receipt(outbox, clock, NOW - HOUR, recent)
        clock.now = NOW
        assert outbox.prune_receipted(86400) == (1, 0)
    config = outbox_site_file(tmp_path)
    code, out, err = run_cli(
        capsys, "edge", "outbox", "receipted", "resend", "--since", _iso(NOW - 3 * 86400),
        "--yes", "--config", str(config),
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert "1 receipted violation(s) queued again" in out
    assert "kept 86400 s (receipted_retention_s): those receipted before " in out
    assert "are no longer on this node" in out
    assert _pending(tmp_path / "outbox") == [recent.event_id]
    # A --since within the retention: nothing to say about it.
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        outbox.mark_published([recent.event_id])
        outbox.mark_receipted([recent.event_id])
    code, out, _ = run_cli(
        capsys, "edge", "outbox", "receipted", "resend", "--since", _iso(NOW - 2 * HOUR),
        "--config", str(config),
    )  # fmt: skip
    assert code == 0 and "would send 1 receipted violation(s) again" in out
    assert "receipted_retention_s" not in out


def test_evidence_uploaded_before_is_not_on_the_node_and_the_rest_goes_as_usual(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The node deletes an evidence file once central has it: a violation queued again
    goes without it (said), while its evidence not uploaded yet is uploaded as usual and
    a broken one stays broken."""
    clock = Clock(NOW - 2 * HOUR)
    with Outbox(tmp_path / "outbox", BIG_BUDGET, clock=clock) as outbox:
        event, (frame, clip) = _stored(outbox)
        other, (broken, _) = _stored(outbox)
        outbox.mark_blob_uploaded(frame.ref.sha256)
        outbox.mark_blob_broken(broken.ref.sha256, "changed on disk")
        _receipt(outbox, clock, NOW - HOUR, event, other)
        assert not outbox.blob_path(frame.ref.sha256).exists()
    config = outbox_site_file(tmp_path)
    code, out, err = run_cli(
        capsys, "edge", "outbox", "receipted", "resend", "--since", _iso(NOW - 2 * HOUR),
        "--yes", "--config", str(config),
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert "2 receipted violation(s) queued again" in out
    assert (
        "their evidence: 2 file(s) not uploaded yet (sent as usual), 1 uploaded before and"
        " no longer on the node (not sent again), 1 broken"
    ) in out
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        assert sorted(m.id for m in outbox.due_messages(10)) == sorted(
            [event.event_id, other.event_id]
        )
        due = {b.sha256 for b in outbox.due_blobs(10)}
        assert clip.ref.sha256 in due and frame.ref.sha256 not in due
        assert broken.ref.sha256 not in due
        assert outbox.evidence_progress(event.event_id).uploaded == 1


def test_a_violation_queued_again_counts_in_the_budget_until_receipted_again(
    tmp_path: Path,
) -> None:
    """Its bytes count against the disk budget again while it awaits its new receipt, and
    no longer once receipted (the figure neither drifts nor goes below zero)."""
    clock = Clock(NOW - 2 * HOUR)
    with Outbox(tmp_path / "outbox", BIG_BUDGET, clock=clock) as outbox:
        event, _ = _stored(outbox, [])
        stored = outbox.used_bytes()
        _receipt(outbox, clock, NOW - HOUR, event)
        assert outbox.used_bytes() == 0
        resent = outbox.resend_receipted(NOW - 2 * HOUR)
        assert resent.event_ids == (event.event_id,)
        assert outbox.used_bytes() == stored
        _receipt(outbox, clock, NOW, event)
        assert outbox.used_bytes() == 0
        assert outbox.stats().receipted == 1
        assert outbox.prune_receipted(0) == (1, 0)
        assert outbox.used_bytes() == 0


def test_resend_works_while_the_running_node_holds_the_outbox(
    receipted_outbox: tuple[Path, list[ViolationEvent], ViolationEvent],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The node keeps its outbox open (and writes to it) while the technician resends:
    the node's own connection sees the violations due at once."""
    config, receipted, _awaiting = receipted_outbox
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as node:
        assert node.due_messages(10) == []
        code, out, _ = run_cli(
            capsys, "edge", "outbox", "receipted", "resend", "--since", _iso(RECEIPTED[0]),
            "--yes", "--config", str(config),
        )  # fmt: skip
        assert code == 0 and "3 receipted violation(s) queued again" in out
        due = [m.id for m in node.due_messages(10)]
        assert sorted(due) == sorted(e.event_id for e in receipted)
        assert node.mark_published(due) == 3


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--since", "2026-12-07T10:00"], "--since 2026-12-07T10:00 has no zone: give it"),
        (["--since", "yesterday"], "--since 'yesterday' is not an ISO 8601 time"),
        (
            ["--since", "2026-12-07T10:00Z", "--until", "2026-12-07T11:00"],
            "--until 2026-12-07T11:00 has no zone",
        ),
        (
            ["--since", "2026-12-07T10:00Z", "--until", "2026-12-07T17:00+07:00"],
            "--until 2026-12-07T17:00+07:00 is not after --since 2026-12-07T10:00Z",
        ),
    ],
    ids=["naive-since", "not-a-time", "naive-until", "until-not-after"],
)
def test_a_bad_time_is_refused_in_one_line_and_nothing_changes(
    receipted_outbox: tuple[Path, list[ViolationEvent], ViolationEvent],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    said: str,
) -> None:
    config, _receipted, _awaiting = receipted_outbox
    before = outbox_state(tmp_path / "outbox")
    code, out, err = run_cli(
        capsys, "edge", "outbox", "receipted", "resend", *argv, "--yes", "--config", str(config)
    )
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and said in err and "nothing was sent again" in err
    assert outbox_state(tmp_path / "outbox") == before
