"""The outbox's receipt states: re-send time-outs with back-off, reconciliation helpers,
pruning after retention, and the figures the node status reports."""

from __future__ import annotations

from pathlib import Path

from edge.outbox import MessageState, Outbox
from roadwatch.contract import EvidenceRole
from tests.delivery_support import BIG_BUDGET, blob, signed_event


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _outbox(tmp_path: Path, clock: Clock) -> Outbox:
    return Outbox(
        tmp_path / "outbox",
        BIG_BUDGET,
        clock=clock,
        receipt_timeout_s=60,
        receipt_timeout_cap_s=200,
    )


def test_published_events_are_resent_after_the_receipt_timeout_with_back_off(
    tmp_path: Path,
) -> None:
    clock = Clock()
    with _outbox(tmp_path, clock) as outbox:
        event, blobs = signed_event([])
        outbox.put_violation(event, blobs)
        outbox.mark_published([event.event_id])
        assert outbox.due_resends(10) == []
        clock.now += 59
        assert outbox.due_resends(10) == []
        clock.now += 2
        assert [m.id for m in outbox.due_resends(10)] == [event.event_id]
        assert outbox.due_resends(10, exclude={event.event_id}) == []
        waits = []
        for _ in range(4):
            sent_at = clock.now
            assert outbox.mark_resent([event.event_id]) == 1
            while not outbox.due_resends(10):
                clock.now += 1
            waits.append(clock.now - sent_at)
        assert waits == [120, 200, 200, 200]  # doubling from the time-out, up to the cap
        assert outbox.message_state(event.event_id) is MessageState.PUBLISHED
        assert outbox.mark_receipted([event.event_id]) == 1
        assert outbox.due_resends(10) == []
        assert outbox.mark_resent([event.event_id]) == 0


def test_status_figures_count_events_awaiting_receipt_and_the_oldest(tmp_path: Path) -> None:
    clock = Clock()
    with _outbox(tmp_path, clock) as outbox:
        first, _ = signed_event([])
        outbox.put_violation(first, [])
        clock.now += 10
        second, _ = signed_event([])
        outbox.put_violation(second, [])
        outbox.mark_published([first.event_id, second.event_id])
        stats = outbox.stats()
        assert (stats.pending, stats.awaiting_receipt) == (0, 2)
        assert stats.oldest_unreceipted_created_at == 1_000_000.0
        outbox.mark_receipted([first.event_id])
        stats = outbox.stats()
        assert stats.awaiting_receipt == 1
        assert stats.oldest_unreceipted_created_at == 1_000_010.0


def test_unreceipted_and_resend_now_serve_reconciliation(tmp_path: Path) -> None:
    clock = Clock()
    with _outbox(tmp_path, clock) as outbox:
        old, _ = signed_event([])
        outbox.put_violation(old, [])
        clock.now += 1000
        new, _ = signed_event([])
        outbox.put_violation(new, [])
        outbox.mark_published([old.event_id, new.event_id])
        assert outbox.unreceipted(500, 10) == [old.event_id]
        assert outbox.due_resends(10) == []
        assert outbox.resend_now([old.event_id, "no-such-id"]) == 1
        assert [m.id for m in outbox.due_resends(10)] == [old.event_id]


def test_prune_deletes_receipted_events_after_retention_and_unlisted_uploaded_blobs(
    tmp_path: Path,
) -> None:
    clock = Clock()
    with _outbox(tmp_path, clock) as outbox:
        shared = blob(EvidenceRole.FRAME_AT, b"shared frame")
        a, a_blobs = signed_event([shared])
        b, b_blobs = signed_event([shared, blob(EvidenceRole.CLIP, b"clip of b")])
        outbox.put_violations([(a, a_blobs), (b, b_blobs)])
        outbox.mark_published([a.event_id, b.event_id])
        outbox.mark_receipted([a.event_id, b.event_id])
        clock.now += 3600
        # Evidence not uploaded yet: nothing may go (the files are still needed).
        assert outbox.prune_receipted(600) == (0, 0)
        outbox.mark_blob_uploaded(shared.ref.sha256)
        # a's evidence is all uploaded: a goes; the shared blob is still listed by b.
        assert outbox.prune_receipted(600) == (1, 0)
        assert outbox.message_state(a.event_id) is None
        assert outbox.message_state(b.event_id) is MessageState.RECEIPTED
        outbox.mark_blob_uploaded(b_blobs[1].ref.sha256)
        assert outbox.prune_receipted(7200) == (0, 0)  # within its retention
        assert outbox.prune_receipted(600) == (1, 2)
        stats = outbox.stats()
        assert (stats.pending, stats.published, stats.receipted, stats.used_bytes) == (0, 0, 0, 0)


def test_a_violation_central_refused_for_good_is_kept_and_not_sent_again(tmp_path: Path) -> None:
    """Central's final refusal (a revoked key's signature) ends the re-sending: the event is
    kept with its reason, for the record, no longer awaits a receipt nor is asked about.
    A refusal of another message under the event's id changes nothing; a receipt that
    comes after all outweighs the refusal."""
    import hashlib

    from roadwatch.contract.models import EventRefusal, RefusalCode

    clock = Clock()
    with _outbox(tmp_path, clock) as outbox:
        kept, _blobs = signed_event([])
        other, _ = signed_event([])
        for event in (kept, other):
            outbox.put_violation(event, [])
        wire = {m.id: m.payload for m in outbox.due_messages(10)}
        outbox.mark_published([kept.event_id, other.event_id])

        def refusal(event_id: str, payload: bytes) -> EventRefusal:
            return EventRefusal(
                event_id=event_id, payload_sha256=hashlib.sha256(payload).hexdigest(),
                code=RefusalCode.REVOKED_KEY, reason="signed with key 3f9a, revoked: rotated",
            )  # fmt: skip

        assert outbox.mark_refused([refusal(other.event_id, b"another message")]) == 0
        assert outbox.mark_refused([refusal(kept.event_id, wire[kept.event_id])]) == 1
        clock.now += 3600
        assert [m.id for m in outbox.due_resends(10)] == [other.event_id]
        assert outbox.unreceipted(0, 10) == [other.event_id]
        stats = outbox.stats()
        assert (stats.awaiting_receipt, stats.refused) == (1, 1)
        [held] = outbox.refused_events()
        assert (held.event_id, held.code) == (kept.event_id, "revoked_key")
        assert "rotated" in held.reason
        assert outbox.prune_receipted(0) == (0, 0)  # (kept for the record)
        assert outbox.mark_receipted([kept.event_id]) == 1
        assert (outbox.refused_events(), outbox.stats().refused) == ([], 0)
