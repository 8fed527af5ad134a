"""Receipts: which of its events central holds, told back to each node in contract-sized
batches (the SQL lookups on a migrated SQLite database; both databases in integration)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from central.db import session_factory, transaction
from central.models import Violation
from central.receipts import HeldEvent, held_events, known_event_ids, receipt_messages
from roadwatch.contract import parse_payload
from roadwatch.contract.ids import new_event_id
from roadwatch.contract.models import MAX_RECEIPTS_PER_BATCH, ReceiptBatch
from tests.central_fixtures import CentralDb, migrated_database

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
SENT = T0 + timedelta(minutes=5)


def _held(site: str, node: str, n: int, complete: bool = True) -> list[HeldEvent]:
    return [
        HeldEvent(site, node, new_event_id(), T0 + timedelta(seconds=i), complete) for i in range(n)
    ]


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({}, []),
        ({("s1", "n1"): 1}, [("s1", "n1", 1)]),
        ({("s1", "n1"): MAX_RECEIPTS_PER_BATCH}, [("s1", "n1", MAX_RECEIPTS_PER_BATCH)]),
        (
            {("s1", "n1"): MAX_RECEIPTS_PER_BATCH + 1},
            [("s1", "n1", MAX_RECEIPTS_PER_BATCH), ("s1", "n1", 1)],
        ),
        # by site, then node, whatever order they were committed in
        (
            {("s2", "n1"): 2, ("s1", "n2"): 1, ("s1", "n1"): 3},
            [("s1", "n1", 3), ("s1", "n2", 1), ("s2", "n1", 2)],
        ),
    ],
)
def test_receipts_go_to_their_node_in_batches_of_at_most_the_contract_size(
    counts: dict[tuple[str, str], int], expected: list[tuple[str, str, int]]
) -> None:
    held = [h for (site, node), n in counts.items() for h in _held(site, node, n)]
    messages = receipt_messages(held, SENT)
    got = []
    told: dict[tuple[str, str], list[str]] = {}
    for m in messages:
        batch = parse_payload(ReceiptBatch, m.payload)
        assert m.topic == f"roadwatch/v1/{batch.site}/{batch.node}/receipt"
        assert m.count == len(batch.receipts) and batch.sent_at == SENT
        got.append((batch.site, batch.node, m.count))
        told.setdefault((batch.site, batch.node), []).extend(r.event_id for r in batch.receipts)
    assert got == expected
    # every held event is told once, to its own node, in the order it was given
    for key in counts:
        assert told[key] == [h.event_id for h in held if (h.site, h.node) == key]


def test_a_receipt_says_when_the_event_was_committed_and_whether_its_evidence_is_all_in() -> None:
    held = _held("s1", "n1", 1, complete=False) + _held("s1", "n1", 1, complete=True)
    (message,) = receipt_messages(held, SENT)
    receipts = json.loads(message.payload)["receipts"]
    assert [(r["event_id"], r["evidence_complete"]) for r in receipts] == [
        (held[0].event_id, False),
        (held[1].event_id, True),
    ]
    batch = parse_payload(ReceiptBatch, message.payload)
    assert [r.committed_at for r in batch.receipts] == [h.committed_at for h in held]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CentralDb]:
    with migrated_database("sqlite", Path(tmp_path_factory.mktemp("receipts-db"))) as db:
        yield db


def _store(db: CentralDb, site: str, node: str, received_at: datetime, complete: bool) -> str:
    event_id = new_event_id()
    row = Violation(
        event_id=event_id,
        type="speeding",
        site=site,
        node=node,
        camera="cam-01",
        occurred_at=received_at - timedelta(seconds=30),
        received_at=received_at,
        vehicle_class="car",
        payload="{}",
        payload_sha256="0" * 64,
        evidence_complete=complete,
    )
    with transaction(session_factory(db.engine)) as session:
        session.add(row)
    return event_id


def test_only_committed_events_are_held_with_their_commit_time(db: CentralDb) -> None:
    a = _store(db, "s1", "n1", T0, complete=True)
    b = _store(db, "s1", "n2", T0 + timedelta(seconds=1), complete=False)
    unknown = new_event_id()
    with transaction(session_factory(db.engine)) as session:
        assert held_events(session, []) == []
        assert held_events(session, [unknown]) == []
        got = sorted(held_events(session, [b, unknown, a]), key=lambda h: h.event_id)
    assert got == [
        HeldEvent("s1", "n1", a, T0, True),
        HeldEvent("s1", "n2", b, T0 + timedelta(seconds=1), False),
    ]
    assert all(h.committed_at.tzinfo is not None for h in got)


def test_a_node_is_told_only_of_its_own_events(db: CentralDb) -> None:
    mine = sorted(_store(db, "s9", "n1", T0, complete=True) for _ in range(3))
    other_node = _store(db, "s9", "n2", T0, complete=True)
    other_site = _store(db, "s8", "n1", T0, complete=True)
    asked = [*mine, other_node, other_site, new_event_id()]
    with transaction(session_factory(db.engine)) as session:
        assert known_event_ids(session, "s9", "n1", asked) == mine
        assert known_event_ids(session, "s9", "n2", asked) == [other_node]
        assert known_event_ids(session, "s9", "n1", []) == []


def test_only_violations_refused_for_good_are_told_back_as_final_refusals() -> None:
    """A violation signed with a revoked key is told back to its node as refused for good,
    naming the very message refused; a refusal a re-send may change (a clock ahead), a
    traffic minute's, or a message that names no event is not."""
    import hashlib

    from central.intake import Message, Refusal, RefusalCode
    from central.receipts import final_refusals, refusal_messages
    from roadwatch.contract import CameraTopic, camera_topic, to_wire
    from roadwatch.contract.models import RefusalBatch
    from tests.factories import violation_event

    event = violation_event(site="s1", node="n1", camera="c1")
    wire = to_wire(event)
    topic = camera_topic("s1", "n1", "c1", CameraTopic.VIOLATION)
    revoked = Refusal(RefusalCode.REVOKED_KEY, "signed with key 3f9a…, revoked: rotated")
    refused = [
        (Message(topic, wire), revoked),
        (Message(topic, wire), Refusal(RefusalCode.FUTURE, "stamped ahead")),
        (Message(camera_topic("s1", "n1", "c1", CameraTopic.TRAFFIC), b"{}"), revoked),
        (Message(topic, b"not json"), revoked),
    ]
    [message] = refusal_messages(final_refusals(refused), SENT)
    assert message.topic == "roadwatch/v1/s1/n1/receipt" and message.count == 1
    [told] = parse_payload(RefusalBatch, message.payload).refused
    assert (told.event_id, told.code.value) == (event.event_id, "revoked_key")
    assert told.payload_sha256 == hashlib.sha256(wire).hexdigest()
    assert "rotated" in told.reason


# Which quarantines of a violation are final (told back to the node as refused for good)
# and which transient (the node sends the event again until it is taken): docs/receipts.md.
@pytest.mark.parametrize(
    ("code", "final"),
    [
        ("revoked_key", True),
        ("forged", True),
        ("not_canonical", False),
        ("reused_event_id", True),
        ("from_the_past", True),
        ("from_the_future", False),
        ("unknown_node", False),
        ("schema_version", False),
        ("malformed", False),
        ("bad_topic", False),
        ("topic_mismatch", False),
        ("unsigned", False),
        ("unsequenced", False),
        ("replayed", False),
    ],
)
def test_which_quarantines_of_a_violation_are_final(code: str, final: bool) -> None:
    from central.intake import Message, Refusal, RefusalCode
    from central.receipts import final_refusals
    from roadwatch.contract import CameraTopic, camera_topic, to_wire
    from tests.factories import violation_event

    event = violation_event(site="s1", node="n1", camera="c1")
    topic = camera_topic("s1", "n1", "c1", CameraTopic.VIOLATION)
    told = final_refusals([(Message(topic, to_wire(event)), Refusal(RefusalCode(code), "why"))])
    assert [r.refusal.code.value for r in told] == ([code] if final else [])


def test_every_quarantine_code_is_decided_final_or_transient() -> None:
    """A new quarantine code cannot be added without saying whether a node should stop
    sending the violation it refuses; and every final one is in the node's contract."""
    from central.intake import RefusalCode
    from central.receipts import FINALITY
    from roadwatch.contract.models import RefusalCode as Told

    assert set(FINALITY) == set(RefusalCode)
    assert {c for c in FINALITY.values() if c is not None} <= set(Told)
    assert all(told is None or told.value == code.value for code, told in FINALITY.items())


def test_each_code_goes_in_batches_of_its_own_so_an_older_node_keeps_those_it_knows() -> None:
    """A node that knows only revoked_key refuses a whole batch that names forged: the
    revoked_key refusals come in a batch of their own, first."""
    from central.intake import Message, Refusal, RefusalCode
    from central.receipts import final_refusals, refusal_messages
    from roadwatch.contract import CameraTopic, camera_topic, to_wire
    from roadwatch.contract.models import RefusalBatch
    from tests.factories import violation_event

    topic = camera_topic("s1", "n1", "c1", CameraTopic.VIOLATION)
    refused = [
        (
            Message(topic, to_wire(violation_event(site="s1", node="n1", camera="c1"))),
            Refusal(RefusalCode(code), "why"),
        )
        for code in ("forged", "revoked_key", "from_the_past", "forged")
    ]
    messages = refusal_messages(final_refusals(refused), SENT)
    batches = [parse_payload(RefusalBatch, m.payload) for m in messages]
    assert [[r.code.value for r in b.refused] for b in batches] == [
        ["revoked_key"],
        ["forged", "forged"],
        ["from_the_past"],
    ]
    assert [m.count for m in messages] == [1, 2, 1]


def test_a_copy_of_an_event_central_holds_is_owed_its_receipt_not_a_refusal(
    db: CentralDb,
) -> None:
    """The very message held, or the same event in another JSON form, quarantined all the
    same, is a copy of one central holds; another content under its id, or the same id
    from another node, is not."""
    import hashlib

    from central.intake import Message, Refusal, RefusalCode
    from central.receipts import final_refusals, held_copies
    from central.records import violation_row
    from roadwatch.contract import CameraTopic, camera_topic, to_wire
    from tests.factories import violation_event

    held = violation_event(site="s7", node="n1", camera="c1")
    wire = to_wire(held)
    with transaction(session_factory(db.engine)) as session:
        session.add(Violation(**violation_row(held, wire)))
    topic = camera_topic("s7", "n1", "c1", CameraTopic.VIOLATION)
    spaced = json.dumps(json.loads(wire), indent=1).encode()  # (the same event, not canonical)
    other = to_wire(held.model_copy(update={"track_id": 99}))
    elsewhere = to_wire(held.model_copy(update={"node": "n2"}))
    refused = [
        (Message(topic, wire), Refusal(RefusalCode.REVOKED_KEY, "revoked")),
        (Message(topic, spaced), Refusal(RefusalCode.REVOKED_KEY, "revoked")),
        (Message(topic, other), Refusal(RefusalCode.REUSED_ID, "reused")),
        (
            Message(camera_topic("s7", "n2", "c1", CameraTopic.VIOLATION), elsewhere),
            Refusal(RefusalCode.FORGED, "forged"),
        ),
    ]
    with transaction(session_factory(db.engine)) as session:
        copies = held_copies(session, final_refusals(refused))
        assert held_copies(session, []) == set()
    assert copies == {
        (held.event_id, hashlib.sha256(wire).hexdigest()),
        (held.event_id, hashlib.sha256(spaced).hexdigest()),
    }
