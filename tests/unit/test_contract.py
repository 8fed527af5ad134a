from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from roadwatch.contract import (
    CameraHealth,
    CameraState,
    ConfigPush,
    ContractError,
    EvidenceRef,
    EvidenceRole,
    LampColour,
    LaneFlow,
    MediaType,
    NodeState,
    NodeStatus,
    Receipt,
    ReceiptBatch,
    SignalPhase,
    TrafficStats,
    VehicleClass,
    ViolationEvent,
    canonical_bytes,
    canonical_model_bytes,
    event_id_time_ms,
    is_event_id,
    new_event_id,
    parse_payload,
    to_wire,
)
from roadwatch.contract.signing import (
    SignatureError,
    _signed_part_of_wire,
    generate_private_key,
    key_fingerprint,
    load_private_key,
    load_public_key_pem,
    private_key_pem,
    public_key_pem,
    sign,
    sign_bytes,
    signing_payload,
    verify,
    verify_bytes,
)
from tests.factories import T0, violation_event


def test_event_round_trips_through_the_wire() -> None:
    event = violation_event()
    again = parse_payload(ViolationEvent, to_wire(event))
    assert again == event
    assert to_wire(again) == to_wire(event)


@pytest.mark.parametrize(
    "model",
    [
        TrafficStats(
            site="s",
            node="n",
            camera="c",
            minute_start=T0.replace(second=0, microsecond=0),
            lanes=[LaneFlow(lane="l1", counts={VehicleClass.MOTORCYCLE: 41}, occupancy=0.2)],
        ),
        NodeStatus(
            site="s",
            node="n",
            state=NodeState.ONLINE,
            sent_at=T0,
            cameras=[CameraHealth(camera="c", state=CameraState.STALLED, reason="no frame 5 s")],
        ),
        SignalPhase(
            site="s", node="n", camera="c", phase=LampColour.RED, changed_at=T0, sent_at=T0
        ),
        ConfigPush(
            site="s",
            node="n",
            config_version="v7",
            issued_at=T0,
            config={"cameras": [{"id": "c", "url": "rtsp://x"}]},
        ),
        ReceiptBatch(
            site="s",
            node="n",
            sent_at=T0,
            receipts=[Receipt(event_id=new_event_id(), committed_at=T0, evidence_complete=False)],
        ),
    ],
    ids=lambda m: type(m).__name__,
)
def test_every_payload_round_trips(model: object) -> None:
    assert isinstance(model, (TrafficStats, NodeStatus, SignalPhase, ConfigPush, ReceiptBatch))
    assert parse_payload(type(model), to_wire(model)) == model


def test_times_are_normalized_to_utc_with_z() -> None:
    hanoi = timezone(timedelta(hours=7))
    event = violation_event(occurred_at=datetime(2026, 11, 23, 14, 3, 5, 120000, tzinfo=hanoi))
    assert event.occurred_at == T0
    assert json.loads(to_wire(event))["occurred_at"] == "2026-11-23T07:03:05.120000Z"


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        violation_event(occurred_at=datetime(2026, 11, 23, 7, 0))


def test_canonical_form_is_stable_under_key_reordering() -> None:
    wire = json.loads(to_wire(violation_event()))
    reordered = dict(reversed(list(wire.items())))
    reordered["measured"] = dict(reversed(list(wire["measured"].items())))
    assert canonical_bytes(reordered) == canonical_bytes(wire)
    assert canonical_model_bytes(ViolationEvent.model_validate(reordered)) == canonical_bytes(wire)


def test_canonical_form_refuses_nan() -> None:
    with pytest.raises(ValueError):
        canonical_bytes({"x": float("nan")})


def test_signature_verifies_and_any_one_byte_change_breaks_it() -> None:
    key = generate_private_key()
    signed = sign(violation_event(), key)
    verify(signed, key.public_key())
    wire = to_wire(signed)
    signature_field = wire.index(b'"signature"')
    flips = 0
    for i in range(len(wire)):
        if signature_field <= i < signature_field + 100:
            continue  # changing the signature itself is covered below
        mutated = bytearray(wire)
        mutated[i] ^= 0x01
        try:
            candidate = parse_payload(ViolationEvent, bytes(mutated))
        except ContractError:
            continue  # the change made the payload invalid: refused before verification
        if canonical_model_bytes(candidate) == canonical_model_bytes(signed):
            continue  # the flip hit insignificant JSON (same canonical content)
        flips += 1
        with pytest.raises(SignatureError):
            verify(candidate, key.public_key())
        with pytest.raises(SignatureError):
            verify(candidate, key.public_key(), wire=bytes(mutated))
    assert flips > 50, "too few mutations reached verification to mean anything"


def _reformatted(wire: bytes, **dumps: object) -> bytes:
    return json.dumps(json.loads(wire), **dumps).encode()  # type: ignore[arg-type]


def _compact(data: dict[str, object]) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _signature_first(wire: bytes) -> bytes:
    data = json.loads(wire)
    return _compact({"signature": data.pop("signature"), **data})


def _keys_reversed(wire: bytes) -> bytes:
    return _compact(dict(reversed(json.loads(wire).items())))


def _escaped_key(wire: bytes) -> bytes:
    return wire.replace(b'"signature":', b'"signatur\\u0065":')


@pytest.mark.parametrize(
    ("name", "form", "fast"),
    [
        ("canonical, as nodes send it", lambda w: w, True),
        ("signature member first", _signature_first, True),
        ("spaces and indentation", lambda w: _reformatted(w, indent=2), False),
        ("keys in another order", _keys_reversed, False),
        ("ASCII escapes", lambda w: _reformatted(w, ensure_ascii=True), False),
        ("signature key spelled with an escape", _escaped_key, False),
    ],
)
def test_signature_verifies_from_the_wire_in_any_json_form(
    name: str, form: object, fast: bool
) -> None:
    key = generate_private_key()
    signed = sign(violation_event(explanation="Vượt đèn đỏ tại làn 2"), key)
    wire = form(to_wire(signed))  # type: ignore[operator]
    parsed = parse_payload(ViolationEvent, wire)
    assert parsed == signed, name
    verify(parsed, key.public_key(), wire=wire)
    assert parsed.signature is not None
    part = _signed_part_of_wire(wire, parsed.signature)
    if fast:
        assert part == signing_payload(signed)
    else:
        assert part is None or part != signing_payload(signed)


def test_signed_wire_with_smuggled_members_is_refused() -> None:
    """Text placed around the signature member to make the checked bytes differ from
    what the model holds is caught by one path or the other."""
    key = generate_private_key()
    signed = sign(violation_event(explanation="honest"), key)
    wire = to_wire(signed)
    assert signed.signature is not None
    member = b',"signature":"' + signed.signature.encode() + b'"'
    forged = [
        # a second member with another explanation after the signed one
        wire[:-1] + b',"explanation":"forged"}',
        # the signature given twice: the checked bytes would still hold one
        wire[:-1] + member + b"}",
        # the signed text moved into another field
        wire.replace(b'"explanation":"honest"', b'"explanation":"forged"'),
    ]
    refused = 0
    for raw in forged:
        try:
            parsed = parse_payload(ViolationEvent, raw)
        except ContractError:
            continue
        if parsed == signed:
            verify(parsed, key.public_key(), wire=raw)  # same content: rightly accepted
            continue
        with pytest.raises(SignatureError):
            verify(parsed, key.public_key(), wire=raw)
        refused += 1
    assert refused >= 2, "the forgeries must reach the signature check to mean anything"


def test_signature_by_another_key_or_tampered_signature_fails() -> None:
    key, other = generate_private_key(), generate_private_key()
    signed = sign(violation_event(), key)
    with pytest.raises(SignatureError, match="does not match"):
        verify(signed, other.public_key())
    sig = signed.signature
    assert sig is not None
    tampered = signed.model_copy(update={"signature": ("B" if sig[0] == "A" else "A") + sig[1:]})
    with pytest.raises(SignatureError):
        verify(tampered, key.public_key())
    with pytest.raises(SignatureError, match="not signed"):
        verify(violation_event(), key.public_key())


def _traffic_minute() -> TrafficStats:
    return TrafficStats(
        site="s",
        node="n",
        camera="c",
        minute_start=T0.replace(second=0, microsecond=0),
        counted_from=T0,
        lanes=[LaneFlow(lane="l1", counts={VehicleClass.MOTORCYCLE: 41}, occupancy=0.2)],
    )


def _node_status() -> NodeStatus:
    return NodeStatus(
        site="s",
        node="n",
        state=NodeState.ONLINE,
        sent_at=T0,
        cameras=[CameraHealth(camera="c", state=CameraState.UP, fps=25.0)],
    )


@pytest.mark.parametrize(
    ("report", "forged"),
    [
        pytest.param(
            _traffic_minute,
            {"lanes": [LaneFlow(lane="l1", counts={VehicleClass.MOTORCYCLE: 410})]},
            id="traffic minute, counts inflated",
        ),
        pytest.param(_traffic_minute, {"counted_from": None}, id="traffic part, made whole"),
        pytest.param(
            _traffic_minute,
            {"counted_until": T0 + timedelta(seconds=1)},
            id="traffic part, cut short",
        ),
        pytest.param(_node_status, {"state": NodeState.OFFLINE}, id="status, node said offline"),
        pytest.param(
            _node_status,
            {"cameras": [CameraHealth(camera="c", state=CameraState.DOWN)]},
            id="status, camera said down",
        ),
        pytest.param(
            _node_status,
            {"cameras": [CameraHealth(camera="c", state=CameraState.UP, fps=25.0, place="Km 9")]},
            id="status, camera placed elsewhere",
        ),
    ],
)
def test_traffic_and_status_are_signed_by_the_node_like_violations(
    report: Callable[[], TrafficStats | NodeStatus], forged: dict[str, object]
) -> None:
    """A traffic minute and a node status carry the node's signature over their canonical
    form: it verifies from the wire, and any change of what they say breaks it."""
    key, other = generate_private_key(), generate_private_key()
    signed = sign(report(), key)
    wire = to_wire(signed)
    assert json.loads(wire)["signature"] == signed.signature is not None
    parsed = parse_payload(type(signed), wire)
    assert parsed == signed
    verify(parsed, key.public_key(), wire=wire)
    verify(parsed, key.public_key(), wire=_reformatted(wire, indent=2))
    with pytest.raises(SignatureError, match="does not match"):
        verify(parsed, other.public_key(), wire=wire)
    changed = signed.model_copy(update=forged)
    with pytest.raises(SignatureError, match="does not match"):
        verify(changed, key.public_key(), wire=to_wire(changed))
    with pytest.raises(SignatureError, match="not signed"):
        verify(report(), key.public_key())


@pytest.mark.parametrize("place", [None, "QL13 Km 22+300"])
def test_a_cameras_place_is_in_its_status_only_where_it_has_one(place: str | None) -> None:
    health = CameraHealth(camera="c", state=CameraState.UP, place=place)
    wire = to_wire(health)
    assert (b'"place"' in wire) == (place is not None)  # (absent: as it always read)
    assert parse_payload(CameraHealth, wire).place == place


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"surprise": 1}, "surprise"),
        ({"site": "Bình Dương"}, "site"),
        ({"site": "a" * 65}, "site"),
        ({"track_id": -1}, "track_id"),
        ({"camera_clock_offset_s": 1e9}, "camera_clock_offset_s"),
        ({"measured": {"speed_kmh": 9999}}, "measured.speed_kmh"),
        ({"measured": {"speed_kmh": "NaN"}}, "measured.speed_kmh"),
        ({"explanation": "x" * 2001}, "explanation"),
        ({"explanation": "null\x00byte"}, "explanation"),
        ({"explanation": "Xe \u202evượt đèn đỏ"}, "explanation"),  # shown reversed
        ({"place": "QL13 \u2067Km 22\u2069"}, "place"),
        ({"schema_version": "2"}, "schema_version"),
        ({"event_id": "not-a-uuid"}, "event_id"),
        ({"type": "jaywalking"}, "type"),
        ({"plate": {"text": "<script>", "confidence": 0.5, "valid": False}}, "plate.text"),
        ({"plate": {"text": "51F-123.45", "confidence": 1.5, "valid": True}}, "plate.confidence"),
        (
            {
                "evidence": [
                    {"role": "clip", "media_type": "video/mp4", "sha256": "z" * 64, "size": 1}
                ]
            },
            "evidence.0.sha256",
        ),
        (
            {
                "evidence": [
                    {"role": "clip", "media_type": "video/mp4", "sha256": "a" * 64, "size": 10**12}
                ]
            },
            "evidence.0.size",
        ),
        (
            {
                "evidence": [
                    {"role": "clip", "media_type": "video/mp4", "sha256": "a" * 64, "size": 1}
                ]
                * 33
            },
            "evidence",
        ),
    ],
)
def test_hostile_fields_are_refused_with_the_field_named(
    patch: dict[str, object], field: str
) -> None:
    wire = json.loads(to_wire(violation_event()))
    wire.update(patch)
    with pytest.raises(ContractError) as err:
        parse_payload(ViolationEvent, json.dumps(wire))
    assert f"field '{field}" in str(err.value)


def test_oversized_payload_is_refused_before_parsing() -> None:
    with pytest.raises(ContractError, match="bytes; at most"):
        parse_payload(ViolationEvent, b"{" + b" " * 600_000 + b"}")


def test_malformed_json_is_a_contract_error() -> None:
    with pytest.raises(ContractError, match="ViolationEvent"):
        parse_payload(ViolationEvent, b'{"event_id": ')


def test_duplicate_evidence_roles_and_receipts_are_refused() -> None:
    ref = EvidenceRef(role=EvidenceRole.CLIP, media_type=MediaType.MP4, sha256="a" * 64, size=1)
    with pytest.raises(ValidationError, match="once"):
        violation_event(evidence=[ref, ref])
    eid = new_event_id()
    with pytest.raises(ValidationError, match="twice"):
        ReceiptBatch(
            site="s",
            node="n",
            sent_at=T0,
            receipts=[Receipt(event_id=eid, committed_at=T0, evidence_complete=True)] * 2,
        )


def test_traffic_minute_must_be_whole() -> None:
    with pytest.raises(ValidationError, match="whole minute"):
        TrafficStats(site="s", node="n", camera="c", minute_start=T0)


MINUTE = T0.replace(second=0, microsecond=0)


@pytest.mark.parametrize(
    ("counted_from", "ok"),
    [
        (None, True),
        (MINUTE, True),
        (MINUTE + timedelta(seconds=59.999999), True),
        (MINUTE + timedelta(minutes=1), False),
        (MINUTE - timedelta(microseconds=1), False),
    ],
    ids=["whole minute", "its first instant", "its last instant", "the next minute", "before"],
)
def test_a_part_of_a_traffic_minute_begins_within_it(
    counted_from: datetime | None, ok: bool
) -> None:
    def part() -> TrafficStats:
        return TrafficStats(
            site="s", node="n", camera="c", minute_start=MINUTE, counted_from=counted_from
        )

    if not ok:
        with pytest.raises(ValidationError, match="within the minute"):
            part()
        return
    wire = to_wire(part())
    assert (b"counted_from" in wire) == (counted_from is not None)  # (absent: as it always read)
    assert parse_payload(TrafficStats, wire).part_start == (counted_from or MINUTE)


@pytest.mark.parametrize(
    ("counted_from", "counted_until", "ok"),
    [
        (None, None, True),
        (None, MINUTE + timedelta(seconds=40), True),
        (MINUTE + timedelta(seconds=20), MINUTE + timedelta(seconds=20), True),
        (None, MINUTE + timedelta(minutes=1), True),
        (MINUTE + timedelta(seconds=20), MINUTE + timedelta(seconds=19.9), False),
        (None, MINUTE - timedelta(microseconds=1), False),
        (None, MINUTE + timedelta(minutes=1, microseconds=1), False),
    ],
    ids=[
        "to the minute's end",
        "stopped 40 s in",
        "one frame: begun and stopped at once",
        "said to stop at the minute's end",
        "stopped before it began",
        "stopped before the minute",
        "stopped in the next minute",
    ],
)
def test_a_part_of_a_traffic_minute_ends_within_it_after_its_start(
    counted_from: datetime | None, counted_until: datetime | None, ok: bool
) -> None:
    def part() -> TrafficStats:
        return TrafficStats(
            site="s",
            node="n",
            camera="c",
            minute_start=MINUTE,
            counted_from=counted_from,
            counted_until=counted_until,
        )

    if not ok:
        with pytest.raises(ValidationError, match="counted_until must lie from the part's start"):
            part()
        return
    wire = to_wire(part())
    # (absent: as a part that ran to the minute's end always read)
    assert (b"counted_until" in wire) == (counted_until is not None)
    read = parse_payload(TrafficStats, wire)
    assert read.part_end == (counted_until or MINUTE + timedelta(minutes=1))


def test_a_signal_phase_is_told_once_it_has_begun() -> None:
    def told(changed: timedelta) -> SignalPhase:
        return SignalPhase(site="s", node="n", camera="c", phase=LampColour.RED,
                           changed_at=T0 + changed, sent_at=T0)  # fmt: skip

    assert told(timedelta(0)).changed_at == T0
    with pytest.raises(ValidationError, match="changed_at is after sent_at"):
        told(timedelta(microseconds=1))


def test_config_push_is_bounded() -> None:
    with pytest.raises(ValidationError, match="at most"):
        ConfigPush(
            site="s", node="n", config_version="v", issued_at=T0, config={"blob": "x" * 300_000}
        )


def test_event_ids_are_uuid7_unique_and_sorted_by_time() -> None:
    ids = [new_event_id() for _ in range(5000)]
    assert all(is_event_id(i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    ms = 1_763_881_385_120
    assert event_id_time_ms(new_event_id(now_ms=ms + 10_000)) >= ms


def _id_fields(event_id: str) -> tuple[int, int, int, int, int]:
    """(ms, version, counter, variant, random) of a UUIDv7 as laid out by RFC 9562."""
    value = uuid.UUID(event_id).int
    return (value >> 80, (value >> 76) & 0xF, (value >> 64) & 0xFFF, (value >> 62) & 0b11,
            value & ((1 << 62) - 1))  # fmt: skip


def test_event_id_layout_counts_within_a_millisecond_and_across_a_clock_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from roadwatch.contract import ids

    monkeypatch.setattr(ids, "_last_ms", 0)
    monkeypatch.setattr(ids, "_counter", 0)
    t = 1_763_881_385_121  # (odd: every bit of the time is kept)
    steps = [
        (t, t, 0),  # a new millisecond: the counter starts again
        (t, t, 1),  # the same millisecond: counted
        (t - 5, t, 2),  # the clock stepped back: still after the last id
        (t + 10, t + 10, 0),
    ]
    made = []
    for clock_ms, ms, counter in steps:
        made.append(new_event_id(now_ms=clock_ms))
        assert _id_fields(made[-1])[:4] == (ms, 7, counter, 0b10)
        assert event_id_time_ms(made[-1]) == ms
    monkeypatch.setattr(ids, "_counter", 0xFFE)
    made.append(new_event_id(now_ms=t + 10))
    assert _id_fields(made[-1])[:3] == (t + 10, 7, 0xFFF)  # the last count of that ms
    made.append(new_event_id(now_ms=t + 10))
    assert _id_fields(made[-1])[:3] == (t + 11, 7, 0)  # counter full: the next ms
    assert made == sorted(made) and len(set(made)) == len(made)
    randoms = [_id_fields(new_event_id(now_ms=t + 20))[4] for _ in range(32)]
    assert len(set(randoms)) == len(randoms)
    assert any(r >> 61 for r in randoms) and any(r & 1 for r in randoms)  # all 62 bits used


def test_an_event_id_carries_the_time_it_was_made(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from roadwatch.contract import ids

    monkeypatch.setattr(ids, "_last_ms", 0)
    before = int(time.time() * 1000)
    made = new_event_id()
    after = int(time.time() * 1000)
    assert before <= event_id_time_ms(made) <= after


def test_models_are_frozen() -> None:
    event = violation_event()
    with pytest.raises(ValidationError):
        event.track_id = 3  # type: ignore[misc]


_text = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=200)


@settings(max_examples=200, deadline=None)
@given(
    explanation=_text,
    speed=st.floats(min_value=0, max_value=400, allow_nan=False),
    offset=st.floats(min_value=-86400, max_value=86400, allow_nan=False),
    track=st.integers(min_value=0, max_value=2**53),
    micros=st.integers(min_value=0, max_value=10**12),
)
def test_serialization_round_trips_for_any_valid_values(
    explanation: str, speed: float, offset: float, track: int, micros: int
) -> None:
    event = violation_event(
        explanation=explanation,
        measured={"speed_kmh": speed},
        camera_clock_offset_s=offset,
        track_id=track,
        occurred_at=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros),
    )
    wire = to_wire(event)
    again = parse_payload(ViolationEvent, wire)
    assert again == event
    assert to_wire(again) == wire


@settings(max_examples=100, deadline=None)
@given(
    data=st.dictionaries(
        st.text(max_size=10),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers()
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(),
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.dictionaries(st.text(max_size=5), inner, max_size=4)
            ),
            max_leaves=20,
        ),
        max_size=8,
    )
)
def test_canonical_bytes_is_a_fixed_point(data: dict[str, object]) -> None:
    once = canonical_bytes(data)
    assert canonical_bytes(json.loads(once)) == once


def test_one_blob_listed_under_two_roles_must_agree_with_itself() -> None:
    """The same picture as two roles is fine; as two sizes or types, the case could
    never have all its evidence."""
    frame = EvidenceRef(role=EvidenceRole.FRAME_AT, media_type=MediaType.JPEG, sha256="a" * 64,
                        size=100)  # fmt: skip
    same = frame.model_copy(update={"role": EvidenceRole.FRAME_BEFORE})
    assert len(violation_event(evidence=[frame, same]).evidence) == 2
    for change in ({"size": 101}, {"media_type": MediaType.PNG}):
        with pytest.raises(ValidationError, match="same size and media type"):
            violation_event(evidence=[frame, same.model_copy(update=change)])


def test_a_signature_has_one_spelling() -> None:
    """Base64 of 64 bytes ends in one of A, Q, g, w before "==": the other 15 letters there
    decode to the same bytes, so one event could be stored in other bytes that verify."""
    import base64

    from roadwatch.contract.signing import generate_private_key, sign

    signed = sign(violation_event(), generate_private_key())
    assert signed.signature is not None and signed.signature[-3] in "AQgw"
    assert parse_payload(ViolationEvent, to_wire(signed)) == signed
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    at = alphabet.index(signed.signature[-3])
    twin = signed.signature[:-3] + alphabet[at + 1] + "=="
    assert base64.b64decode(twin) == base64.b64decode(signed.signature)
    wire = json.loads(to_wire(signed))
    wire["signature"] = twin
    with pytest.raises(ContractError, match="field 'signature'"):
        parse_payload(ViolationEvent, json.dumps(wire))


def test_status_counters_are_bounded() -> None:
    from roadwatch.contract import CameraHealth

    with pytest.raises(ValidationError):
        CameraHealth(camera="cam-01", state="up", reconnects=10**4000)
    assert CameraHealth(camera="cam-01", state="up", reconnects=2**53 - 1).reconnects > 0
    with pytest.raises(ValidationError):
        CameraHealth(camera="cam-01", state="up", reconnects=2**53)


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (b'{"a":1,"signature":"S"}', b'{"a":1}'),  # the member last: its comma goes
        (b'{"signature":"S","a":1}', b'{"a":1}'),  # the member first: the comma after it
        (b'{"a":1,"signature":"S","b":2}', b'{"a":1,"b":2}'),
        (b'{"signature":"S"}', None),  # (no member beside it: nothing was signed so)
        (b'{ "signature":"S","a":1}', None),  # not compact: the canonical form decides
        (b'{"a":"\\u0041","signature":"S"}', None),  # an escape anywhere: cannot tell
        (b'{"a":1,"signature":"S","signature":"S"}', None),  # twice
        (b'{"a":1,"signature":"T"}', None),  # another signature than the model's
        (b'{"a":1,"signature": "S"}', None),  # spaced: not the literal member
        (b'"signature":"S","a":1}', None),  # (at the very start: not an object's member)
    ],
)
def test_the_signed_part_is_cut_from_the_wire_only_where_it_is_unambiguous(
    wire: bytes, expected: bytes | None
) -> None:
    assert _signed_part_of_wire(wire, "S") == expected


@pytest.mark.parametrize(
    ("form", "exact_ok"),
    [
        (lambda w: w, True),  # canonical, as nodes send it
        (_signature_first, True),  # the signed bytes are in it as they are
        (lambda w: _reformatted(w, indent=2), False),
        (_keys_reversed, False),
    ],
)
def test_exact_verification_takes_only_the_bytes_that_were_signed(
    form: object, exact_ok: bool
) -> None:
    key = generate_private_key()
    signed = sign(violation_event(), key)
    wire = form(to_wire(signed))  # type: ignore[operator]
    parsed = parse_payload(ViolationEvent, wire)
    verify(parsed, key.public_key(), wire=wire)  # the content is the signed content
    verify(parsed, key.public_key(), exact=True)  # (no bytes given: the model's own form)
    if exact_ok:
        verify(parsed, key.public_key(), wire=wire, exact=True)
    else:
        with pytest.raises(SignatureError, match="not in the form it was signed in"):
            verify(parsed, key.public_key(), wire=wire, exact=True)
    other = generate_private_key()
    with pytest.raises(SignatureError, match="does not match"):
        verify(parsed, other.public_key(), wire=to_wire(signed), exact=True)


def test_a_model_signature_must_be_strict_base64() -> None:
    key = generate_private_key()
    signed = sign(violation_event(), key)
    assert signed.signature is not None
    junk = signed.model_copy(update={"signature": "!" + signed.signature})
    with pytest.raises(SignatureError, match="not valid base64"):
        verify(junk, key.public_key())


def test_a_document_signature_verifies_and_nothing_else_does() -> None:
    key, other = generate_private_key(), generate_private_key()
    data = "cấu hình".encode()
    signature = sign_bytes(data, key)
    verify_bytes(data, signature, key.public_key())
    with pytest.raises(SignatureError, match="does not match"):
        verify_bytes(data + b" ", signature, key.public_key())
    with pytest.raises(SignatureError, match="does not match"):
        verify_bytes(data, signature, other.public_key())
    with pytest.raises(SignatureError, match="does not match"):
        verify_bytes(data, sign_bytes(data, other), key.public_key())
    for bad in ("!" + signature, signature[:-2] + "#=", "not base64"):
        with pytest.raises(SignatureError, match="not valid base64"):
            verify_bytes(data, bad, key.public_key())


def test_keys_round_trip_through_pem_and_keep_their_fingerprint(tmp_path: Path) -> None:
    import hashlib

    key = generate_private_key()
    public = key.public_key()
    path = tmp_path / "node.pem"
    path.write_bytes(private_key_pem(key))
    again = load_private_key(path)
    assert again.private_bytes_raw() == key.private_bytes_raw()
    pem = public_key_pem(public)
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    for text in (pem, pem.decode("ascii")):
        assert load_public_key_pem(text).public_bytes_raw() == public.public_bytes_raw()
    fingerprint = key_fingerprint(public)
    assert fingerprint == hashlib.sha256(public.public_bytes_raw()).hexdigest()
    assert fingerprint != key_fingerprint(generate_private_key().public_key())


def test_only_ed25519_keys_are_taken(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "ec.pem"
    path.write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(SignatureError, match="not an Ed25519 private key"):
        load_private_key(path)
    ec_public = ec_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(SignatureError, match="not an Ed25519 public key"):
        load_public_key_pem(ec_public)
    with pytest.raises(SignatureError, match="not a PEM public key"):
        load_public_key_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


@pytest.mark.parametrize(
    "half", [{"session_started_at": T0}, {"sequence": 3}], ids=["session only", "sequence only"]
)
def test_a_status_gives_its_place_in_full_or_not_at_all(half: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="session_started_at and sequence come together"):
        NodeStatus(site="s", node="n", state=NodeState.ONLINE, sent_at=T0, **half)


def test_an_older_nodes_event_without_a_vietnamese_explanation_verifies_as_it_was_signed() -> None:
    """A node before the Vietnamese explanation signed the event without the field: it reads,
    verifies exactly and goes out again as the same bytes."""
    key = generate_private_key()
    body = json.loads(to_wire(violation_event()))
    assert "explanation_vi" not in body
    del body["signature"]
    signed_bytes = canonical_bytes(body)  # what such a node signed
    wire = canonical_bytes({**body, "signature": sign_bytes(signed_bytes, key)})
    event = parse_payload(ViolationEvent, wire)
    assert event.explanation_vi is None
    verify(event, key.public_key(), wire=wire, exact=True)
    assert to_wire(event) == wire


@pytest.mark.parametrize(("awaiting", "carried"), [(0, False), (3, True)])
def test_a_status_carries_its_awaiting_key_count_only_above_0(awaiting: int, carried: bool) -> None:
    """A node with no violation awaiting its key sends its status as a node before the
    count did (which an older central takes); re-sent, either reads and verifies as it was
    signed."""
    key = generate_private_key()
    status = NodeStatus(
        site="s", node="n", state=NodeState.ONLINE, sent_at=T0, awaiting_key=awaiting
    )
    wire = to_wire(sign(status, key))
    assert (b'"awaiting_key"' in wire) is carried
    back = parse_payload(NodeStatus, wire)
    assert back.awaiting_key == awaiting
    verify(back, key.public_key(), wire=wire, exact=True)
    verify(back, key.public_key())  # (its canonical form again, as stored and replayed)
    assert to_wire(back) == wire


def test_the_vietnamese_explanation_is_signed_with_the_rest() -> None:
    key = generate_private_key()
    text = "Ô tô chạy quá tốc độ: đo được tốc độ 92,4 ± 1,1 km/h"
    signed = sign(violation_event(explanation_vi=text), key)
    wire = to_wire(signed)
    assert '"explanation_vi":"Ô tô chạy quá tốc độ'.encode() in wire
    event = parse_payload(ViolationEvent, wire)
    verify(event, key.public_key(), wire=wire, exact=True)
    forged = wire.replace(b"92,4", b"62,4")
    with pytest.raises(SignatureError):
        verify(parse_payload(ViolationEvent, forged), key.public_key(), wire=forged)


@pytest.mark.parametrize(
    ("text", "error"),
    [("x" * 2001, "at most 2000 characters"), ("đèn\u202eđỏ", r"U\+202E is not allowed")],
)
def test_a_vietnamese_explanation_is_bounded_like_the_english_one(text: str, error: str) -> None:
    with pytest.raises(ValidationError, match=error):
        violation_event(explanation_vi=text)
