"""Messages that break the check itself are refused one by one, not raised into the ingest."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.exc import OperationalError

from central import records
from central.intake import (
    Message,
    NodeKeys,
    Refusal,
    RefusalCode,
    RevokedKey,
    check,
    unsigned,
)
from central.records import KeyCache, check_batch
from roadwatch.contract import (
    LaneFlow,
    NodeState,
    NodeStatus,
    TrafficStats,
    VehicleClass,
    ViolationEvent,
    canonical_model_bytes,
    to_wire,
)
from roadwatch.contract.signing import generate_private_key, key_fingerprint, sign
from tests.factories import T0, violation_event

TOPIC = "roadwatch/v1/site-a/node-01/cam-01/violation"
TRAFFIC_TOPIC = "roadwatch/v1/site-a/node-01/cam-01/traffic"
STATUS_TOPIC = "roadwatch/v1/site-a/node-01/status"


def no_key(site: str, node: str) -> None:
    return None


@pytest.mark.parametrize("payload", [b"[" * 5000, b'{"a":' * 5000, b"[" * 50])
def test_nesting_past_the_stack_is_malformed(payload: bytes) -> None:
    outcome = check(Message(TOPIC, payload), no_key)
    assert isinstance(outcome, Refusal) and outcome.code is RefusalCode.MALFORMED


def test_a_message_that_breaks_the_check_is_refused_and_the_rest_are_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fragile(message: Message, keys: Any, **kwargs: Any) -> Any:
        if message.payload == b"boom":
            raise RuntimeError("a case no check foresaw")
        return check(message, keys, **kwargs)

    monkeypatch.setattr(records, "check", fragile)
    out = check_batch(None, [Message(TOPIC, b"boom"), Message(TOPIC, b"{")], KeyCache())  # type: ignore[arg-type]
    assert [o.outcome.code for o in out] == [RefusalCode.MALFORMED] * 2  # type: ignore[union-attr]
    assert "RuntimeError" in out[0].outcome.reason  # type: ignore[union-attr]


def test_a_database_error_still_raises_so_the_batch_is_checked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_database(message: Message, keys: Any, **kwargs: Any) -> Any:
        raise OperationalError("SELECT public_key_pem", {}, Exception("server closed"))

    monkeypatch.setattr(records, "check", no_database)
    with pytest.raises(OperationalError):
        check_batch(None, [Message(TOPIC, b"{}")], KeyCache())  # type: ignore[arg-type]


def _reencoded(text: bytes, how: str) -> bytes:
    data = json.loads(text)
    if how == "spaced":
        return json.dumps(data, ensure_ascii=False, indent=2).encode()
    if how == "reordered":
        return json.dumps(dict(reversed(list(data.items()))), ensure_ascii=False).encode()
    data["track_id"] = str(data["track_id"])  # (the lax parser turns it back into 17)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


@pytest.mark.parametrize("how", ["spaced", "reordered", "number as text"])
def test_a_signed_event_re_encoded_in_another_form_is_refused(how: str) -> None:
    """The same event in other bytes would be stored as received and then not verify for
    whoever checks the evidence: only the form that was signed is taken."""

    key = generate_private_key()
    event = sign(violation_event(site="site-a", node="node-01", camera="cam-01"), key)

    def keys(site: str, node: str) -> Any:
        return key.public_key()

    genuine = to_wire(event)
    assert check(Message(TOPIC, genuine), keys) == event
    outcome = check(Message(TOPIC, _reencoded(genuine, how)), keys)
    assert isinstance(outcome, Refusal) and outcome.code is RefusalCode.NOT_CANONICAL
    assert "not in canonical JSON" in outcome.reason


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('"track_id":17', '"track_id":"17"'),  # a number as text
        ('"valid":true', '"valid":"true"'),
        ('"occurred_at":"2026-11-23T07:03:05.120000Z"', '"occurred_at":"2026-11-23 07:03:05.12Z"'),
        ('"camera":"cam-01",', '"camera":"cam-01","camera":"cam-01",'),  # a key twice
        # One parser reads the first plate, another the last.
        ('"plate":{', '"plate":{"text":"99X-999.99","confidence":1.0,"valid":true},"plate":{'),
        ("Phường", "Ph\\u01b0\\u1eddng"),  # the same text in ASCII escapes
        ('"site":"site-a",', '"site": "site-a",'),
    ],
)
def test_an_event_its_node_signed_in_another_form_is_refused_as_not_canonical(
    old: str, new: str
) -> None:
    """Signed over exactly the bytes sent, but not in canonical form: central would keep
    what the published schema refuses, or what another parser reads otherwise."""

    key = generate_private_key()
    event = violation_event(site="site-a", node="node-01", camera="cam-01")
    event = event.model_copy(update={"explanation": "Phường Hiệp Thành: speed 72 km/h"})
    text = canonical_model_bytes(event, exclude=("signature",)).decode()
    assert text.count(old) == 1, (old, text)
    body = text.replace(old, new).encode()
    signature = base64.b64encode(key.sign(body)).decode("ascii")
    wire = body[:-1] + f',"signature":"{signature}"}}'.encode("ascii")

    def keys(site: str, node: str) -> Any:
        return key.public_key()

    signed = sign(event, key)  # (the canonical form of the same event is taken)
    assert check(Message(TOPIC, to_wire(signed)), keys, now=event.occurred_at) == signed
    outcome = check(Message(TOPIC, wire), keys, now=event.occurred_at)
    assert isinstance(outcome, Refusal) and outcome.code is RefusalCode.NOT_CANONICAL, outcome


@pytest.mark.parametrize(
    ("ahead", "taken"),
    [
        (timedelta(minutes=9), True),  # two clocks never agree to the second
        pytest.param(timedelta(minutes=10), True, id="exactly the margin ahead"),
        pytest.param(timedelta(minutes=10, microseconds=1), False, id="just past the margin"),
        (timedelta(minutes=11), False),
        (timedelta(days=365 * 73), False),
    ],
)
def test_an_event_stamped_in_the_future_waits_for_its_time(ahead: timedelta, taken: bool) -> None:
    """A node whose clock runs ahead: its event is quarantined, and taken when the node
    sends it again once that time has come."""

    key = generate_private_key()
    event = sign(
        violation_event(site="site-a", node="node-01", camera="cam-01", occurred_at=T0 + ahead),
        key,
    )
    message = Message(TOPIC, to_wire(event))
    outcome = check(message, lambda _s, _n: key.public_key(), now=T0)
    if taken:
        assert outcome == event
    else:
        assert isinstance(outcome, Refusal) and outcome.code is RefusalCode.FUTURE
        assert "the node's clock is wrong" in outcome.reason
        later = check(message, lambda _s, _n: key.public_key(), now=T0 + ahead)
        assert later == event


def test_which_of_a_nodes_keys_signed_decides() -> None:
    """Keys in force (a rotation keeps the old one until it is revoked) are each taken; a
    revoked key's signature is refused as revoked_key with the date and reason; any other
    key's as forged; with no key in force, nothing is taken."""

    old, new, stolen, stranger = (generate_private_key() for _ in range(4))
    revoked = RevokedKey(stolen.public_key(), key_fingerprint(stolen.public_key()), T0,
                         "box stolen")  # fmt: skip
    keys = NodeKeys((new.public_key(), old.public_key()), (revoked,))

    def outcome(signer: Any, lookup: NodeKeys = keys) -> Any:
        event = sign(violation_event(site="site-a", node="node-01", camera="cam-01"), signer)
        found = check(Message(TOPIC, to_wire(event)), lambda _s, _n: lookup, now=T0)
        return found if isinstance(found, Refusal) else "taken"

    assert outcome(new) == outcome(old) == "taken"
    refused = outcome(stolen)
    assert refused.code is RefusalCode.REVOKED_KEY
    assert refused.reason == (
        f"signed with key {revoked.fingerprint[:16]}, revoked 2026-11-23T07:03:05+00:00: box stolen"
    )
    assert outcome(stranger).code is RefusalCode.FORGED
    none_in_force = NodeKeys((), (revoked,))
    assert outcome(stranger, none_in_force).reason == "the node has no key in force"
    assert outcome(stolen, none_in_force).code is RefusalCode.REVOKED_KEY
    # Received before the key was revoked: it was in force then (a stored case stands).
    event = sign(violation_event(site="site-a", node="node-01", camera="cam-01"), stolen)
    wire = to_wire(event)
    assert unsigned(event, wire, keys, at=T0 - timedelta(hours=1)) is None
    assert unsigned(event, wire, keys, at=T0).code is RefusalCode.REVOKED_KEY  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kind", "stamped", "taken"),
    [
        ("violation", datetime(1970, 1, 1, 0, 0, 5, tzinfo=UTC), False),  # a clock reset
        ("violation", datetime(1, 1, 1, tzinfo=UTC), False),
        ("violation", datetime(2024, 12, 31, 23, 59, tzinfo=UTC), False),
        ("violation", datetime(2025, 1, 1, tzinfo=UTC), True),
        ("traffic", datetime(1970, 1, 1, tzinfo=UTC), False),
        ("traffic", datetime(2025, 3, 1, 8, 0, tzinfo=UTC), True),
    ],
)
def test_an_event_stamped_before_the_decree_is_quarantined(
    kind: str, stamped: datetime, taken: bool
) -> None:
    """A node whose clock was reset (1970, the year 1): its events are not filed under a
    month long gone (with a partition of their own, overdue on arrival)."""

    key = generate_private_key()
    payload: Any
    if kind == "violation":
        payload = sign(violation_event(site="site-a", node="node-01", camera="cam-01",
                                       occurred_at=stamped), key)  # fmt: skip
        topic = TOPIC
    else:
        payload = sign(TrafficStats(site="site-a", node="node-01", camera="cam-01",
                                    minute_start=stamped), key)  # fmt: skip
        topic = TOPIC.replace("/violation", "/traffic")
    outcome = check(Message(topic, to_wire(payload)), lambda _s, _n: key.public_key())
    if taken:
        assert outcome == payload
    else:
        assert isinstance(outcome, Refusal) and outcome.code is RefusalCode.PAST, outcome
        assert "the node's clock is wrong" in outcome.reason


# -- the message as a whole: topic, contract, registry -------------------------------------


def _registered(key: Ed25519PrivateKey) -> Any:
    """A key lookup where site-a/node-01 is registered with ``key``."""
    return lambda _site, _node: key.public_key()


def _signed(key: Ed25519PrivateKey, **overrides: Any) -> ViolationEvent:
    fields: dict[str, Any] = {"site": "site-a", "node": "node-01", "camera": "cam-01"}
    return sign(violation_event(**(fields | overrides)), key)


def _traffic(**overrides: Any) -> TrafficStats:
    fields: dict[str, Any] = {
        "site": "site-a",
        "node": "node-01",
        "camera": "cam-01",
        "minute_start": T0.replace(second=0, microsecond=0),
    }
    return TrafficStats(**(fields | overrides))


def _status(**overrides: Any) -> NodeStatus:
    fields: dict[str, Any] = {
        "site": "site-a",
        "node": "node-01",
        "state": NodeState.ONLINE,
        "sent_at": T0,
        "session_started_at": T0,
        "sequence": 1,
    }
    return NodeStatus(**(fields | overrides))


def _message(kind: str, key: Ed25519PrivateKey | None, **overrides: Any) -> tuple[Message, Any]:
    """A message of ``kind`` on its own topic (the payload's fields overridden) signed by
    ``key`` (None: a traffic minute or status left unsigned), and the payload it carries."""
    if kind == "violation":
        assert key is not None
        payload: Any = _signed(key, **overrides)
        return Message(TOPIC, to_wire(payload)), payload
    payload = _traffic(**overrides) if kind == "traffic" else _status(**overrides)
    if key is not None:
        payload = sign(payload, key)
    return Message(TRAFFIC_TOPIC if kind == "traffic" else STATUS_TOPIC, to_wire(payload)), payload


@pytest.mark.parametrize("kind", ["violation", "traffic", "status"])
def test_each_kind_central_ingests_is_taken_from_its_topic(kind: str) -> None:
    key = generate_private_key()
    message, payload = _message(kind, key)
    assert check(message, _registered(key), now=T0) == payload


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        pytest.param("mqtt/v1/site-a/node-01/status", "does not start with", id="another root"),
        pytest.param(
            "roadwatch/v1/site-a/node-01/cam-01/frame", "unknown topic kind", id="unknown kind"
        ),
        pytest.param(
            "roadwatch/v1/site-a/node-01/config",
            "central does not ingest config",
            id="central to edge: config",
        ),
        pytest.param(
            "roadwatch/v1/site-a/node-01/receipt",
            "central does not ingest receipt",
            id="central to edge: receipt",
        ),
    ],
)
def test_a_topic_central_does_not_ingest_is_a_bad_topic(topic: str, reason: str) -> None:
    key = generate_private_key()
    message, _ = _message("status", key)
    outcome = check(Message(topic, message.payload), _registered(key), now=T0)
    assert isinstance(outcome, Refusal) and outcome.code is RefusalCode.BAD_TOPIC, outcome
    assert reason in outcome.reason


@pytest.mark.parametrize(
    ("kind", "overrides"),
    [
        pytest.param("violation", {"site": "site-b"}, id="violation, another site"),
        pytest.param("violation", {"node": "node-02"}, id="violation, another node"),
        pytest.param("violation", {"camera": "cam-02"}, id="violation, another camera"),
        pytest.param("traffic", {"site": "site-b"}, id="traffic, another site"),
        pytest.param("traffic", {"node": "node-02"}, id="traffic, another node"),
        pytest.param("traffic", {"camera": "cam-02"}, id="traffic, another camera"),
        pytest.param("status", {"node": "node-02"}, id="status, another node"),
    ],
)
def test_a_payload_naming_another_place_than_its_topic_is_refused(
    kind: str, overrides: dict[str, str]
) -> None:
    """A node publishes only under its own topics: a payload naming another site, node or
    camera is not filed under either."""
    key = generate_private_key()
    message, _ = _message(kind, key, **overrides)
    outcome = check(message, _registered(key), now=T0)
    assert isinstance(outcome, Refusal) and outcome.code is RefusalCode.TOPIC_MISMATCH, outcome
    assert outcome.reason.endswith(f"but came on {message.topic}")


@pytest.mark.parametrize("kind", ["violation", "traffic", "status"])
def test_a_node_not_registered_is_refused(kind: str) -> None:
    message, _ = _message(kind, generate_private_key())
    outcome = check(message, no_key, now=T0)
    assert outcome == Refusal(RefusalCode.UNKNOWN_NODE, "node site-a/node-01 is not registered")


def _with_version(version: str) -> bytes:
    wire = to_wire(_signed(generate_private_key()))
    return wire.replace(b'"schema_version":"1"', b'"schema_version":"%s"' % version.encode())


@pytest.mark.parametrize(
    ("payload", "code", "reason"),
    [
        pytest.param(
            _with_version("2"),
            RefusalCode.SCHEMA_VERSION,
            "schema version '2' is not supported (expected '1')",
            id="a later version",
        ),
        pytest.param(
            _with_version("9" * 100),
            RefusalCode.SCHEMA_VERSION,
            f"schema version '{'9' * 32}' is not",
            id="a long version, cut short",
        ),
        pytest.param(
            b'{"schema_version":"1"}',
            RefusalCode.MALFORMED,
            "field 'event_id': Field required",
            id="this version, fields missing",
        ),
        pytest.param(
            b"{}", RefusalCode.MALFORMED, "field 'event_id': Field required", id="no version"
        ),
        pytest.param(b"[]", RefusalCode.MALFORMED, "Input should be an object", id="a list"),
        pytest.param(b'"1"', RefusalCode.MALFORMED, "Input should be an object", id="a string"),
        pytest.param(b"\xff\xfe", RefusalCode.MALFORMED, "Invalid JSON", id="not UTF-8"),
    ],
)
def test_a_payload_the_contract_refuses_says_whether_its_version_is_why(
    payload: bytes, code: RefusalCode, reason: str
) -> None:
    """Only a payload naming another schema version is refused as such: the node needs an
    upgrade, not a fix. Anything else the contract refuses is malformed, with the field."""
    outcome = check(Message(TOPIC, payload), no_key, now=T0)
    assert isinstance(outcome, Refusal) and outcome.code is code, outcome
    assert reason in outcome.reason


# -- the signature: which key, and when ---------------------------------------------------


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        pytest.param(
            "another key",
            "signature does not match the payload and the signer's key",
            id="signed by a stranger",
        ),
        pytest.param("unsigned", "payload is not signed", id="not signed"),
    ],
)
def test_a_forged_event_says_why(how: str, reason: str) -> None:
    key = generate_private_key()
    event = violation_event(site="site-a", node="node-01", camera="cam-01")
    wire = to_wire(sign(event, generate_private_key()) if how == "another key" else event)
    outcome = check(Message(TOPIC, wire), _registered(key), now=T0)
    assert outcome == Refusal(RefusalCode.FORGED, reason)


# -- traffic minutes and statuses: signed as violations are, unsigned ones during a rollout


@pytest.mark.parametrize("kind", ["traffic", "status"])
@pytest.mark.parametrize("accept_unsigned", [False, True], ids=["by default", "rollout"])
def test_a_traffic_minute_or_status_signed_by_its_node_is_taken(
    kind: str, accept_unsigned: bool
) -> None:
    """In any JSON form: unlike a violation, neither is kept as evidence in the bytes it
    came in, so the content the node signed is what counts."""
    key = generate_private_key()
    message, payload = _message(kind, key)
    assert check(message, _registered(key), now=T0, accept_unsigned=accept_unsigned) == payload
    respaced = json.dumps(json.loads(message.payload), indent=2).encode()
    assert check(Message(message.topic, respaced), _registered(key), now=T0) == payload


@pytest.mark.parametrize("kind", ["traffic", "status"])
def test_an_unsigned_traffic_minute_or_status_is_refused_unless_central_takes_them_meanwhile(
    kind: str,
) -> None:
    """A node not yet upgraded sends them unsigned: refused by default, and saying how to
    take them while nodes are upgraded; taken with that setting."""
    key = generate_private_key()
    message, payload = _message(kind, None)
    what = "traffic minute" if kind == "traffic" else "status"
    assert check(message, _registered(key), now=T0) == Refusal(
        RefusalCode.UNSIGNED,
        f"the {what} is not signed by its node (a node older than central sends it unsigned:"
        " ROADWATCH_ACCEPT_UNSIGNED_TRAFFIC_STATUS=true takes such ones while nodes are"
        " upgraded)",
    )
    assert check(message, _registered(key), now=T0, accept_unsigned=True) == payload
    # (a node nobody registered is refused as such, signed or not)
    assert check(message, no_key, now=T0, accept_unsigned=True) == Refusal(
        RefusalCode.UNKNOWN_NODE, "node site-a/node-01 is not registered"
    )


def _lanes_inflated(payload: Any) -> Any:
    return payload.model_copy(
        update={"lanes": [LaneFlow(lane="lane-1", counts={VehicleClass.CAR: 999})]}
    )


@pytest.mark.parametrize(
    ("kind", "forge"),
    [
        pytest.param("traffic", _lanes_inflated, id="traffic, counts changed after signing"),
        pytest.param(
            "status",
            lambda p: p.model_copy(update={"state": NodeState.OFFLINE}),
            id="status, state changed after signing",
        ),
        pytest.param(
            "status",
            lambda p: sign(p.model_copy(update={"signature": None}), generate_private_key()),
            id="status, signed by a stranger",
        ),
        pytest.param(
            "traffic",
            lambda p: p.model_copy(update={"signature": "A" * 86 + "=="}),
            id="traffic, a signature of no key",
        ),
    ],
)
@pytest.mark.parametrize("accept_unsigned", [False, True], ids=["by default", "rollout"])
def test_a_forged_traffic_minute_or_status_is_refused_even_during_a_rollout(
    kind: str, forge: Callable[[Any], Any], accept_unsigned: bool
) -> None:
    key = generate_private_key()
    message, payload = _message(kind, key)
    forged = Message(message.topic, to_wire(forge(payload)))
    outcome = check(forged, _registered(key), now=T0, accept_unsigned=accept_unsigned)
    assert outcome == Refusal(
        RefusalCode.FORGED, "signature does not match the payload and the signer's key"
    )


@pytest.mark.parametrize("kind", ["traffic", "status"])
def test_a_traffic_minute_or_status_signed_with_a_revoked_key_is_refused(kind: str) -> None:
    """The node's keys as for its violations: a rotated-out key still in force is taken,
    a revoked one only for what central received before it was revoked."""
    old, new, stolen = (generate_private_key() for _ in range(3))
    revoked = RevokedKey(stolen.public_key(), key_fingerprint(stolen.public_key()), T0,
                         "box stolen")  # fmt: skip
    keys = NodeKeys((new.public_key(), old.public_key()), (revoked,))
    for signer in (new, old):
        message, payload = _message(kind, signer)
        assert check(message, lambda _s, _n: keys, now=T0) == payload
    message, payload = _message(kind, stolen)
    assert check(message, lambda _s, _n: keys, now=T0 - timedelta(minutes=1)) == payload
    outcome = check(message, lambda _s, _n: keys, now=T0, accept_unsigned=True)
    assert isinstance(outcome, Refusal) and outcome.code is RefusalCode.REVOKED_KEY, outcome
    assert outcome.reason.endswith("box stolen")


@pytest.mark.parametrize(
    "bytes_around",
    [
        pytest.param((b"", b"\n"), id="a newline after"),
        pytest.param((b"", b"\r\n"), id="a CRLF after"),
        pytest.param((b" ", b""), id="a space before"),
    ],
)
def test_bytes_around_the_canonical_event_are_not_canonical(
    bytes_around: tuple[bytes, bytes],
) -> None:
    """What is kept is the bytes received: any byte outside the signed form is refused."""
    key = generate_private_key()
    before, after = bytes_around
    wire = before + to_wire(_signed(key)) + after
    outcome = check(Message(TOPIC, wire), _registered(key), now=T0)
    assert isinstance(outcome, Refusal) and outcome.code is RefusalCode.NOT_CANONICAL, outcome


def test_stored_bytes_in_another_form_than_signed_do_not_verify() -> None:
    """``unsigned`` also re-checks stored cases: the bytes themselves must verify, not the
    event they parse to (the evidence is handed on as bytes)."""
    key = generate_private_key()
    event = _signed(key)
    respaced = json.dumps(json.loads(to_wire(event)), ensure_ascii=False, indent=1).encode()
    assert unsigned(event, to_wire(event), NodeKeys((key.public_key(),))) is None
    assert unsigned(event, respaced, NodeKeys((key.public_key(),))) == Refusal(
        RefusalCode.FORGED,
        "payload is not in the form it was signed in (canonical JSON): as received it would"
        " not verify",
    )


REVOKED_AT = T0


@pytest.mark.parametrize(
    ("stamped", "received", "code"),
    [
        pytest.param(
            REVOKED_AT - timedelta(hours=1),
            REVOKED_AT - timedelta(minutes=1),
            None,
            id="received before the revocation",
        ),
        pytest.param(
            REVOKED_AT - timedelta(hours=1),
            REVOKED_AT,
            RefusalCode.REVOKED_KEY,
            id="received at the revocation",
        ),
        pytest.param(
            REVOKED_AT - timedelta(hours=1),
            REVOKED_AT + timedelta(days=1),
            RefusalCode.REVOKED_KEY,
            id="stamped before, received after",
        ),
    ],
)
def test_a_revoked_key_is_judged_when_the_event_is_received(
    stamped: datetime, received: datetime, code: RefusalCode | None
) -> None:
    """Whoever holds a revoked key can stamp an event with any time: only when central
    receives it decides whether the key was still in force (on central's clock as given)."""
    stolen = generate_private_key()
    revoked = RevokedKey(
        stolen.public_key(), key_fingerprint(stolen.public_key()), REVOKED_AT, "box stolen"
    )
    keys = NodeKeys((generate_private_key().public_key(),), (revoked,))
    event = _signed(stolen, occurred_at=stamped)
    outcome = check(Message(TOPIC, to_wire(event)), lambda _s, _n: keys, now=received)
    if code is None:
        assert outcome == event
    else:
        assert isinstance(outcome, Refusal) and outcome.code is code, outcome


def test_without_central_s_clock_given_a_key_revoked_before_is_refused() -> None:
    """As the ingest calls it (no clock handed in): the system's clock decides, and a key
    revoked on the day the decree took force has been revoked since."""
    stolen = generate_private_key()
    revoked = RevokedKey(stolen.public_key(), key_fingerprint(stolen.public_key()),
                         datetime(2025, 1, 1, tzinfo=UTC), "box stolen")  # fmt: skip
    keys = NodeKeys((generate_private_key().public_key(),), (revoked,))
    outcome = check(Message(TOPIC, to_wire(_signed(stolen))), lambda _s, _n: keys)
    assert isinstance(outcome, Refusal) and outcome.code is RefusalCode.REVOKED_KEY, outcome


def test_a_signed_status_without_its_place_is_refused_unless_during_a_rollout() -> None:
    """A node older than central signs its status without session and sequence: with no
    position in the node's order it could be an old one sent again. Refused by default,
    saying how to take such ones while nodes are upgraded; taken with that setting."""
    key = generate_private_key()
    message, payload = _message("status", key, session_started_at=None, sequence=None)
    assert check(message, _registered(key), now=T0) == Refusal(
        RefusalCode.UNSEQUENCED,
        "the status carries no session_started_at and sequence, so it cannot be told from an"
        " old one sent again (a node older than central sends it so:"
        " ROADWATCH_ACCEPT_UNSIGNED_TRAFFIC_STATUS=true takes such ones while nodes are"
        " upgraded)",
    )
    assert check(message, _registered(key), now=T0, accept_unsigned=True) == payload


@pytest.mark.parametrize(
    ("began", "code", "said"),
    [
        pytest.param(
            T0 + timedelta(minutes=11), RefusalCode.FUTURE, "its session began"
            " 2026-11-23T07:14:05.120000+00:00, more than 0:10:00 ahead of central's clock",
            id="ahead of central",
        ),
        pytest.param(
            datetime(1970, 1, 1, tzinfo=UTC), RefusalCode.PAST,
            "stamped 1970-01-01T00:00:00+00:00, before 2025-01-01", id="a clock reset",
        ),
    ],
)  # fmt: skip
def test_a_status_whose_session_began_at_a_wrong_time_is_refused(
    began: datetime, code: RefusalCode, said: str
) -> None:
    """The session orders the node's statuses from then on: one begun ahead of central's
    clock would have the statuses after it refused as replayed once the clock is right."""
    key = generate_private_key()
    message, _payload = _message("status", key, session_started_at=began)
    outcome = check(message, _registered(key), now=T0)
    assert isinstance(outcome, Refusal) and outcome.code is code
    assert said in outcome.reason
    ahead = T0 + timedelta(minutes=9)  # (within the ten minutes two clocks may disagree)
    message, payload = _message("status", key, session_started_at=ahead)
    assert check(message, _registered(key), now=T0) == payload


def test_a_key_registered_since_it_was_cached_is_found_before_a_refusal_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A violation no cached key verifies is refused for good as forged (its node stops
    sending it): first the registry is read again, so a node that switched to a key
    registered within the cache's minute is not refused; a forged one still is, with one
    read per node and batch."""
    old, new, stranger = generate_private_key(), generate_private_key(), generate_private_key()
    registered = [NodeKeys((old.public_key(),))]
    reads: list[str] = []

    def node_keys(session: Any, site: str, node: str) -> NodeKeys:
        reads.append(node)
        return registered[-1]

    monkeypatch.setattr(records, "node_keys", node_keys)
    cache = KeyCache(ttl_s=60.0)

    def sent(key: Any, n: int) -> Message:
        event = violation_event(site="site-a", node="node-01", camera="cam-01", track_id=n)
        return Message(TOPIC, to_wire(sign(event, key)))

    [first] = check_batch(None, [sent(old, 1)], cache)  # type: ignore[arg-type]
    assert isinstance(first.outcome, ViolationEvent) and reads == ["node-01"]
    registered.append(NodeKeys((new.public_key(), old.public_key())))
    out = check_batch(None, [sent(new, 2), sent(stranger, 3), sent(stranger, 4)], cache)  # type: ignore[arg-type]
    assert isinstance(out[0].outcome, ViolationEvent)
    assert [o.outcome.code for o in out[1:]] == [RefusalCode.FORGED] * 2  # type: ignore[union-attr]
    assert reads == ["node-01", "node-01"]
