"""A violation central refused as forged that verifies under the node's own key is genuine:
central lacks the key (the node started with a new key before an admin registered it). The
outbox keeps it apart, awaiting the key, and sends it again by itself once central receipts
a violation signed with that key; a message the node's keys do not verify stays final."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.client import MQTTMessage
from paho.mqtt.enums import MQTTErrorCode

import edge.publisher
from edge.delivery_config import DeliveryConfig
from edge.outbox import MAX_KEY_RESENDS, PROOFS_CHECKED, MessageState, Outbox
from edge.publisher import Publisher
from roadwatch.contract import NodeState, NodeTopic, ViolationEvent, node_topic, to_wire
from roadwatch.contract.models import (
    EventRefusal,
    Receipt,
    ReceiptBatch,
    RefusalBatch,
    RefusalCode,
)
from roadwatch.contract.signing import key_fingerprint, public_key_pem, sign
from tests.delivery_support import BIG_BUDGET, KEY
from tests.factories import violation_event

# (the node's key central lacks, and another node's key)
NEW = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))


def _put(outbox: Outbox, key: Ed25519PrivateKey) -> ViolationEvent:
    event = sign(violation_event(evidence=[]), key)
    outbox.put_violation(event, [])
    return event


def _wire(outbox: Outbox, event_id: str) -> bytes:
    [wire] = [m.payload for m in outbox.due_messages(1000) if m.id == event_id]
    return wire


def _refusal(wire: bytes, event: ViolationEvent, code: RefusalCode) -> EventRefusal:
    return EventRefusal(
        event_id=event.event_id,
        payload_sha256=hashlib.sha256(wire).hexdigest(),
        code=code,
        reason=f"{code.value}: central's reason",
    )


def _refuse(
    outbox: Outbox,
    event: ViolationEvent,
    code: RefusalCode,
    own: tuple[Ed25519PrivateKey, ...],
) -> int:
    wire = _wire(outbox, event.event_id)
    outbox.mark_published([event.event_id])
    return outbox.mark_refused(
        [_refusal(wire, event, code)], own_keys=[k.public_key() for k in own]
    )


def _fp(key: Ed25519PrivateKey) -> str:
    return key_fingerprint(key.public_key())


@pytest.mark.parametrize(
    ("code", "signer", "own", "awaiting"),
    [
        # genuine: signed with the node's key central lacks
        (RefusalCode.FORGED, NEW, (NEW,), NEW),
        (RefusalCode.FORGED, NEW, (OTHER, NEW), NEW),
        # not the node's own: final as before
        (RefusalCode.FORGED, OTHER, (NEW,), None),
        (RefusalCode.FORGED, NEW, (), None),
        # other final codes stay final, whoever signed them
        (RefusalCode.REVOKED_KEY, NEW, (NEW,), None),
        (RefusalCode.REUSED_ID, NEW, (NEW,), None),
        (RefusalCode.PAST, NEW, (NEW,), None),
    ],
)
def test_a_forged_refusal_of_a_message_the_node_s_key_verifies_awaits_that_key(
    tmp_path: Path,
    code: RefusalCode,
    signer: Ed25519PrivateKey,
    own: tuple[Ed25519PrivateKey, ...],
    awaiting: Ed25519PrivateKey | None,
) -> None:
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        event = _put(outbox, signer)
        assert _refuse(outbox, event, code, own) == 1
        [refused] = outbox.refused_events()
        stats = outbox.stats()
        assert outbox.due_messages(10) == [] and outbox.due_resends(10) == []
    assert refused.code == code.value
    assert refused.awaiting_key == (None if awaiting is None else _fp(awaiting))
    assert (stats.refused, stats.refused_awaiting_key) == (1, int(awaiting is not None))


@pytest.mark.parametrize(
    ("receipted_signer", "sent_again"),
    [
        (NEW, True),  # central holds the key now
        (KEY, False),  # another key of the node's: proves nothing of NEW
        (OTHER, False),
    ],
)
def test_a_receipt_for_a_violation_signed_with_the_awaited_key_sends_the_awaiting_ones_again(
    tmp_path: Path, receipted_signer: Ed25519PrivateKey, sent_again: bool
) -> None:
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        awaiting = [_put(outbox, NEW) for _ in range(3)]
        final = _put(outbox, OTHER)  # (forged, and not the node's: final)
        for event in awaiting:
            _refuse(outbox, event, RefusalCode.FORGED, (NEW,))
        _refuse(outbox, final, RefusalCode.FORGED, (NEW,))
        newer = _put(outbox, receipted_signer)
        outbox.mark_published([newer.event_id])
        assert outbox.mark_receipted([newer.event_id]) == 1
        due = sorted(m.id for m in outbox.due_messages(10))
        refused = {r.event_id: r.awaiting_key for r in outbox.refused_events()}
        actions = outbox.refused_actions(10)
        stats = outbox.stats()
    if sent_again:
        assert due == sorted(e.event_id for e in awaiting)
        assert refused == {final.event_id: None}
        assert sorted(a.event_id for a in actions) == due
        for action in actions:
            assert (action.action, action.actor) == ("resend", "node")
            assert f"central took {newer.event_id}" in action.detail
            assert _fp(NEW) in action.detail and "was forged" in action.detail
        assert (stats.refused, stats.refused_awaiting_key) == (1, 0)
    else:
        assert due == []
        assert refused == {**{e.event_id: _fp(NEW) for e in awaiting}, final.event_id: None}
        assert actions == []
        assert (stats.refused, stats.refused_awaiting_key) == (4, 3)


@pytest.mark.parametrize(
    ("older_others", "newer_others", "sent_again"),
    [
        (30, 0, True),  # the newest of the batch
        (0, PROOFS_CHECKED - 1, True),  # the last of those checked
        (0, PROOFS_CHECKED, False),  # older than those checked: left to the next receipts
    ],
)
def test_only_a_receipt_batch_s_newest_violations_are_checked_for_the_awaited_key(
    tmp_path: Path, older_others: int, newer_others: int, sent_again: bool
) -> None:
    """A rotation's receipts for violations of the old key may come by the thousand while
    some await the new key: only the newest of a batch (the node signs its newest with its
    newest key) are checked, a bounded cost under the outbox's lock."""
    ticks = iter(range(1, 10_000))
    with Outbox(tmp_path / "outbox", BIG_BUDGET, clock=lambda: float(next(ticks))) as outbox:
        awaiting = _put(outbox, NEW)
        _refuse(outbox, awaiting, RefusalCode.FORGED, (NEW,))
        older = [_put(outbox, KEY) for _ in range(older_others)]
        proof = _put(outbox, NEW)
        newer = [_put(outbox, KEY) for _ in range(newer_others)]
        batch = [e.event_id for e in (*older, proof, *newer)]
        outbox.mark_published(batch)
        outbox.mark_receipted(batch)
        due = [m.id for m in outbox.due_messages(10)]
    assert due == ([awaiting.event_id] if sent_again else [])


def test_a_violation_sent_again_for_its_key_is_refused_for_good_after_the_bound(
    tmp_path: Path,
) -> None:
    """Refused as forged again after each re-send central's receipts prompted: after
    ``MAX_KEY_RESENDS`` of them it stays refused, for the technician, not in a loop."""
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        event = _put(outbox, NEW)
        for round_ in range(MAX_KEY_RESENDS + 1):
            _refuse(outbox, event, RefusalCode.FORGED, (NEW,))
            [refused] = outbox.refused_events()
            if round_ == MAX_KEY_RESENDS:
                break
            assert refused.awaiting_key == _fp(NEW)
            proof = _put(outbox, NEW)
            outbox.mark_published([proof.event_id])
            outbox.mark_receipted([proof.event_id])
            assert outbox.message_state(event.event_id) is MessageState.PENDING
        assert refused.awaiting_key is None
        proof = _put(outbox, NEW)
        outbox.mark_published([proof.event_id])
        outbox.mark_receipted([proof.event_id])
        assert [r.event_id for r in outbox.refused_events()] == [event.event_id]
        assert outbox.due_messages(10) == []
        assert [a.action for a in outbox.refused_actions(10)] == ["resend"] * MAX_KEY_RESENDS


def test_a_late_refusal_of_a_copy_sent_before_the_key_resend_is_not_taken(
    tmp_path: Path,
) -> None:
    """The re-send stands until central answers it: a refusal told late, of a copy sent
    before, changes nothing (as after the technician's retry)."""
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        event = _put(outbox, NEW)
        wire = _wire(outbox, event.event_id)
        _refuse(outbox, event, RefusalCode.FORGED, (NEW,))
        proof = _put(outbox, NEW)
        outbox.mark_published([proof.event_id])
        outbox.mark_receipted([proof.event_id])
        late = _refusal(wire, event, RefusalCode.FORGED)
        assert outbox.mark_refused([late], own_keys=[NEW.public_key()]) == 0
        assert [m.id for m in outbox.due_messages(10)] == [event.event_id]


def test_an_outbox_from_before_keys_were_awaited_takes_its_column(tmp_path: Path) -> None:
    """An outbox whose refused table predates ``awaiting_key`` gets it, its rows kept final."""
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        event = _put(outbox, NEW)
        _refuse(outbox, event, RefusalCode.FORGED, ())
    with sqlite3.connect(tmp_path / "outbox" / "outbox.sqlite3") as db:
        db.execute("ALTER TABLE refused DROP COLUMN awaiting_key")
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        [held] = outbox.refused_events()
        assert (held.event_id, held.awaiting_key) == (event.event_id, None)
        other = _put(outbox, NEW)
        assert _refuse(outbox, other, RefusalCode.FORGED, (NEW,)) == 1
        assert outbox.stats().refused_awaiting_key == 1


def test_edge_outbox_lists_the_ones_awaiting_a_key_and_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from roadwatch.cli import main

    config = tmp_path / "site.yaml"
    config.write_text(
        "delivery:\n  site: ql13-km22\n  node: node-01\n"
        f"  key_path: {tmp_path / 'node-01.key'}\n  outbox:\n    path: {tmp_path / 'outbox'}\n",
        encoding="utf-8",
    )
    public = tmp_path / "node-01.pub"
    public.write_bytes(public_key_pem(NEW.public_key()))
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        genuine = _put(outbox, NEW)
        forged = _put(outbox, OTHER)
        _refuse(outbox, genuine, RefusalCode.FORGED, (NEW,))
        _refuse(outbox, forged, RefusalCode.FORGED, (NEW,))
    assert main(["edge", "outbox", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "refused by central 2 (kept, not sent again)" in out
    assert "awaiting the registration of this node's key 1" in out
    command = "`roadwatch central node key add --site ql13-km22 --node node-01 --public-key"
    assert (
        f"key {_fp(NEW)} is this node's and central lacks it: register it on central"
        f" ({command} {public}`"
    ) in out
    assert "(the running node sends the oldest again every 10 minutes to check)" in out
    # The node's key changed again since: its public key file is not the one awaited.
    public.write_bytes(public_key_pem(OTHER.public_key()))
    assert main(["edge", "outbox", "--config", str(config)]) == 0
    assert f"({command} PUBLIC_KEY_FILE`, the public key whose" in capsys.readouterr().out
    [line] = [ln for ln in out.splitlines() if f"refused {genuine.event_id}" in ln]
    assert line.endswith(f"(awaiting key registration: {_fp(NEW)})")
    [line] = [ln for ln in out.splitlines() if f"refused {forged.event_id}" in ln]
    assert "awaiting" not in line


def test_a_refusal_and_a_receipt_of_the_key_taken_in_one_turn_send_the_refused_one_again(
    tmp_path: Path,
) -> None:
    """Central refused one before the key was registered and receipted a newer one after:
    told in the same turn of the publisher (both queued on the broker while the node was
    away, say), the refusal is recorded first, so the receipt finds it awaiting the key
    and sends it again; recorded after, it waited for the node's next violation. A receipt
    still outweighs a refusal of the same event told in that turn."""
    config = DeliveryConfig.model_validate(
        {"site": "s", "node": "node-01", "key_path": str(tmp_path / "node.key"),
         "outbox": {"path": str(tmp_path / "outbox")}}
    )  # fmt: skip
    now = datetime.now(UTC)
    topic = node_topic("s", "node-01", NodeTopic.RECEIPT).encode()
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        refused = _put(outbox, NEW)
        wire = _wire(outbox, refused.event_id)
        receipted = _put(outbox, NEW)
        both = _put(outbox, OTHER)  # (refused and receipted: central holds it after all)
        both_wire = _wire(outbox, both.event_id)
        outbox.mark_published([refused.event_id, receipted.event_id, both.event_id])
        publisher = Publisher(config, outbox, key=NEW)
        for batch in (
            RefusalBatch(
                site="s", node="node-01", sent_at=now,
                refused=[
                    _refusal(wire, refused, RefusalCode.FORGED),
                    _refusal(both_wire, both, RefusalCode.FORGED),
                ],
            ),
            ReceiptBatch(
                site="s", node="node-01", sent_at=now,
                receipts=[
                    Receipt(event_id=e.event_id, committed_at=now, evidence_complete=True)
                    for e in (receipted, both)
                ],
            ),
        ):  # fmt: skip
            message = MQTTMessage(topic=topic)
            message.payload = to_wire(batch)
            publisher._on_message(None, None, message)  # type: ignore[arg-type]
        publisher._record_acks()
        for event in (receipted, both):
            assert outbox.message_state(event.event_id) is MessageState.RECEIPTED
        assert [m.id for m in outbox.due_messages(10)] == [refused.event_id]
        assert outbox.refused_events() == []


def test_the_log_names_the_whole_command_that_registers_the_awaited_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`central node key add` takes the node's site and node too: the line the node logs
    names them, so it can be run as written."""
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        event = _put(outbox, NEW)
        with caplog.at_level("WARNING", logger="edge.outbox"):
            _refuse(outbox, event, RefusalCode.FORGED, (NEW,))
    [line] = [
        r.getMessage() for r in caplog.records if "refused as forged are genuine" in r.message
    ]
    assert (
        f"`roadwatch central node key add --site {event.site} --node {event.node}"
        " --public-key NODE_KEY.pub`"
    ) in line
    assert _fp(NEW) in line and event.event_id in line


@pytest.mark.parametrize(
    ("receipted_after_sent", "sent_again"),
    [
        # Another ingest refused it from a check made before the key was registered and
        # told it after a newer one's receipt: that receipt proves central holds the key.
        (True, True),
        # A receipt from before it was sent proves nothing of now (central's database
        # restored from a backup from before the key's registration since, say).
        (False, False),
    ],
)
def test_a_receipt_taken_before_the_refusal_proves_the_key_if_taken_since_it_was_sent(
    tmp_path: Path, receipted_after_sent: bool, sent_again: bool
) -> None:
    now = [1000.0]
    with Outbox(tmp_path / "outbox", BIG_BUDGET, clock=lambda: now[0]) as outbox:
        proof = _put(outbox, NEW)
        refused = _put(outbox, NEW)
        wire = _wire(outbox, refused.event_id)
        outbox.mark_published([proof.event_id])
        if not receipted_after_sent:
            outbox.mark_receipted([proof.event_id])
        now[0] += 1
        outbox.mark_published([refused.event_id])
        now[0] += 1
        if receipted_after_sent:
            outbox.mark_receipted([proof.event_id])
        now[0] += 1
        assert (
            outbox.mark_refused(
                [_refusal(wire, refused, RefusalCode.FORGED)], own_keys=[NEW.public_key()]
            )
            == 1
        )
        due = [m.id for m in outbox.due_messages(10)]
        awaiting = [r.awaiting_key for r in outbox.refused_events()]
    assert due == ([refused.event_id] if sent_again else [])
    assert awaiting == ([] if sent_again else [_fp(NEW)])


# ----------------------------------------------------------------- the key probe
# A node that files nothing more after its key changed gets no receipt to prove the key:
# the publisher sends the oldest violation awaiting its key again once a ``KEY_PROBE_S``
# period, while connected, and central's answer to it decides.
SITE, NODE = "ql13-km22", "node-01"  # (those of ``violation_event``)


@dataclass
class _Info:
    mid: int
    rc: MQTTErrorCode = MQTTErrorCode.MQTT_ERR_SUCCESS


@dataclass
class _Client:
    """The paho client as the publisher's turn uses it, keeping what was published."""

    sent: list[tuple[str, bytes]] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> _Info:
        self.sent.append((topic, payload))
        return _Info(mid=len(self.sent))

    def loop(self, timeout: float) -> None:
        pass

    def socket(self) -> object:
        return self

    def violations(self) -> list[bytes]:
        return [payload for topic, payload in self.sent if topic.endswith("/violation")]


@dataclass
class _Node:
    publisher: Publisher
    client: _Client
    now: list[float]

    def turn_at(self, t: float) -> list[str]:
        """One turn of the publisher at ``t``: the ids of the violations it published."""
        self.now[0] = t
        before = len(self.client.violations())
        self.publisher._turn()
        sent = self.client.violations()[before:]
        return [ViolationEvent.model_validate_json(p).event_id for p in sent]

    def tell(self, batch: ReceiptBatch | RefusalBatch) -> None:
        message = MQTTMessage(topic=node_topic(SITE, NODE, NodeTopic.RECEIPT).encode())
        message.payload = to_wire(batch)
        self.publisher._on_message(None, None, message)  # type: ignore[arg-type]
        self.publisher._record_acks()

    def ack(self, mid: int) -> None:
        self.publisher._on_publish(None, None, mid, None, None)  # type: ignore[arg-type]
        self.publisher._record_acks()


def _node(
    outbox: Outbox, monkeypatch: pytest.MonkeyPatch, *, connected: bool = True, at: float = 0.0
) -> _Node:
    """The node's publisher on a fake client and a fake clock reading ``at``."""
    now = [at]
    monkeypatch.setattr(
        edge.publisher, "time", SimpleNamespace(monotonic=lambda: now[0], time=time.time)
    )
    config = DeliveryConfig.model_validate(
        {"site": SITE, "node": NODE, "key_path": str(outbox.directory / "node.key"),
         "outbox": {"path": str(outbox.directory)}}
    )  # fmt: skip
    publisher = Publisher(config, outbox, key=NEW)
    client = _Client()
    publisher._client = client  # type: ignore[assignment]
    if connected:
        publisher._connected.set()
    return _Node(publisher, client, now)


def _awaiting_outbox(tmp_path: Path) -> tuple[Outbox, list[ViolationEvent], ViolationEvent]:
    """An outbox holding, oldest first: one awaiting an older key of the node's (KEY), two
    awaiting its key now (NEW), one refused as forged for good (OTHER's)."""
    ticks = iter(range(1, 10_000))
    outbox = Outbox(tmp_path / "outbox", BIG_BUDGET, clock=lambda: float(next(ticks)))
    older_key = _put(outbox, KEY)
    _refuse(outbox, older_key, RefusalCode.FORGED, (KEY,))
    awaiting = [_put(outbox, NEW) for _ in range(2)]
    for event in awaiting:
        _refuse(outbox, event, RefusalCode.FORGED, (NEW,))
    final = _put(outbox, OTHER)
    _refuse(outbox, final, RefusalCode.FORGED, (NEW,))
    return outbox, awaiting, older_key


def _refused_again(wire: bytes, code: RefusalCode) -> RefusalBatch:
    event = ViolationEvent.model_validate_json(wire)
    return RefusalBatch(
        site=SITE, node=NODE, sent_at=datetime.now(UTC), refused=[_refusal(wire, event, code)]
    )


@pytest.mark.parametrize(
    ("connected", "at"),
    [
        (True, 0.0),
        (True, 5_000.0),  # (a publisher started later: its own period, whatever the clock)
        (False, 0.0),  # no probe while the broker is away: it would be lost
    ],
)
def test_the_oldest_violation_awaiting_the_node_s_key_is_sent_again_once_a_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, connected: bool, at: float
) -> None:
    outbox, awaiting, _older_key = _awaiting_outbox(tmp_path)
    with outbox:
        node = _node(outbox, monkeypatch, connected=connected, at=at)
        period = edge.publisher.KEY_PROBE_S
        sent = {
            t: node.turn_at(at + t)
            for t in (0.0, period - 1, period, period + 1, 2 * period - 1, 2 * period)
        }
        counters = node.publisher.counters()
        stats = outbox.stats()
    oldest = [awaiting[0].event_id]  # (of those the node's key now verifies)
    if connected:
        assert sent == {
            0.0: [], period - 1: [], period: oldest, period + 1: [],
            2 * period - 1: [], 2 * period: oldest,
        }  # fmt: skip
        assert counters.key_probes == 2
    else:
        assert all(ids == [] for ids in sent.values()) and counters.key_probes == 0
    # (still refused, awaiting: a probe changes nothing until central answers it)
    assert (stats.refused, stats.refused_awaiting_key, stats.pending) == (4, 3, 0)


def test_no_probe_while_no_violation_awaits_the_node_s_key_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Outbox(tmp_path / "outbox", BIG_BUDGET) as outbox:
        for signer, own in ((KEY, (KEY,)), (OTHER, (NEW,))):  # an older key's; a forged one
            _refuse(outbox, _put(outbox, signer), RefusalCode.FORGED, own)
        node = _node(outbox, monkeypatch)
        sent = node.turn_at(edge.publisher.KEY_PROBE_S)
    assert sent == [] and node.publisher.counters().key_probes == 0


@pytest.mark.parametrize(
    ("answer", "due", "awaiting_after", "probe_code"),
    [
        # central holds the key now: the probe's receipt is the proof; the other goes too
        ("receipt", 1, 1, None),
        # it still lacks the key: the probe stays awaiting, as before
        (RefusalCode.FORGED, 0, 3, RefusalCode.FORGED),
        # it refuses it for another reason now: final, awaiting nothing more
        (RefusalCode.REVOKED_KEY, 0, 2, RefusalCode.REVOKED_KEY),
    ],
)
def test_central_s_answer_to_the_probe_decides(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    answer: RefusalCode | str,
    due: int,
    awaiting_after: int,
    probe_code: RefusalCode | None,
) -> None:
    outbox, awaiting, _older_key = _awaiting_outbox(tmp_path)
    probe, other = awaiting
    with outbox:
        node = _node(outbox, monkeypatch)
        assert node.turn_at(edge.publisher.KEY_PROBE_S) == [probe.event_id]
        [wire] = node.client.violations()
        node.ack(len(node.client.sent))  # (the broker's PUBACK: it stays refused)
        assert outbox.message_state(probe.event_id) is MessageState.PUBLISHED
        caplog.clear()
        with caplog.at_level("DEBUG"):
            if isinstance(answer, RefusalCode):
                node.tell(_refused_again(wire, answer))
            else:
                now = datetime.now(UTC)
                node.tell(
                    ReceiptBatch(
                        site=SITE, node=NODE, sent_at=now,
                        receipts=[Receipt(event_id=probe.event_id, committed_at=now,
                                          evidence_complete=True)],
                    )
                )  # fmt: skip
        queued = [m.id for m in outbox.due_messages(10)]
        refused = {r.event_id: r for r in outbox.refused_events()}
        actions = outbox.refused_actions(10)
        stats = outbox.stats()
    assert queued == [other.event_id][:due]
    assert stats.refused_awaiting_key == awaiting_after
    if probe_code is None:
        assert probe.event_id not in refused
        assert [(a.event_id, a.action) for a in actions] == [(other.event_id, "resend")]
        assert f"central took {probe.event_id}" in actions[0].detail
    else:
        assert refused[probe.event_id].code == probe_code.value
        assert actions == []  # (a probe is no re-send: MAX_KEY_RESENDS is left whole)
    if answer is RefusalCode.FORGED:
        # Said once, as news, not as a fault.
        said = [r for r in caplog.records if probe.event_id in r.getMessage()]
        assert [r.levelname for r in said] == ["INFO"]
        assert "central still lacks this node's key" in said[0].getMessage()


def test_probes_refused_again_never_use_up_the_re_sends_a_receipt_prompts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused as forged after more than ``MAX_KEY_RESENDS`` probes, the violations still
    await the key, and the receipt that at last comes sends every one of them."""
    outbox, awaiting, _older_key = _awaiting_outbox(tmp_path)
    with outbox:
        node = _node(outbox, monkeypatch)
        period = edge.publisher.KEY_PROBE_S
        for n in range(1, MAX_KEY_RESENDS + 3):
            assert node.turn_at(n * period) == [awaiting[0].event_id]
            node.tell(_refused_again(node.client.violations()[-1], RefusalCode.FORGED))
        assert outbox.stats().refused_awaiting_key == 3
        proof = _put(outbox, NEW)
        outbox.mark_published([proof.event_id])
        outbox.mark_receipted([proof.event_id])
        due = sorted(m.id for m in outbox.due_messages(10))
    assert due == sorted(e.event_id for e in awaiting)


def test_the_node_s_status_counts_the_violations_awaiting_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Central keeps the node's status and shows it in its node list: an admin sees there
    how many wait for the key's registration (those refused for good are not counted)."""
    outbox, _awaiting, _older_key = _awaiting_outbox(tmp_path)
    with outbox:
        status = _node(outbox, monkeypatch).publisher._status(NodeState.ONLINE)
        will = _node(outbox, monkeypatch).publisher._status(NodeState.OFFLINE, will=True)
    assert (status.awaiting_key, status.awaiting_receipt) == (3, 0)
    assert will.awaiting_key == 0  # (the last will, signed at connect, carries no figures)
