"""A track's class by majority vote, and a violation turned into its contract event."""

from __future__ import annotations

import itertools

import pytest

from edge.rules.tracks import ClassVote, EvidenceTimes, Violation
from roadwatch.contract import Measurement, PlateReading, VehicleClass, ViolationType
from tests.rules_tracks import T0

CAR, TRUCK, BUS = VehicleClass.CAR, VehicleClass.TRUCK, VehicleClass.BUS


def vote(votes: list[VehicleClass]) -> VehicleClass:
    tally = ClassVote()
    for vehicle in votes:
        tally.add(vehicle)
    return tally.winner


def test_a_track_without_votes_is_of_unknown_class() -> None:
    assert vote([]) is VehicleClass.UNKNOWN


@pytest.mark.parametrize(
    ("votes", "winner"),
    [
        ([CAR], CAR),
        ([TRUCK, CAR, CAR], CAR),
        ([TRUCK, TRUCK, CAR, BUS, TRUCK], TRUCK),
    ],
)
def test_the_class_most_frames_show_wins(votes: list[VehicleClass], winner: VehicleClass) -> None:
    assert vote(votes) is winner


@pytest.mark.parametrize("votes", [[CAR, TRUCK], [CAR, TRUCK, BUS], [BUS, BUS, CAR, CAR]])
def test_a_tie_goes_the_same_way_whatever_order_the_votes_came_in(
    votes: list[VehicleClass],
) -> None:
    assert len({vote(list(order)) for order in itertools.permutations(votes)}) == 1


def test_a_violation_becomes_an_event_carrying_every_field() -> None:
    measured = Measurement(dwell_s=30.25)
    plate = PlateReading(text="51F-123.45", confidence=0.9, valid=True)
    violation = Violation(
        rule=ViolationType.NO_STOPPING,
        rule_version="no_stopping/3",
        config_version="synthetic/7",
        camera="cam-test",
        track_id=9,
        vehicle_class=TRUCK,
        lane="2",
        t=T0 + 30.25,
        evidence=EvidenceTimes(before=T0, at=T0 + 15.0, after=T0 + 30.25),
        measured=measured,
        explanation="truck stood still",
    )
    event = violation.to_event(
        site="ql13-km22",
        node="node-01",
        model_version="yolov8n/1",
        plate=plate,
        camera_clock_offset_s=0.4,
        place="QL13 km 22",
    )
    assert (event.type, event.site, event.node, event.camera, event.lane) == (
        ViolationType.NO_STOPPING,
        "ql13-km22",
        "node-01",
        "cam-test",
        "2",
    )
    assert event.occurred_at.timestamp() == T0 + 30.25
    assert (event.camera_clock_offset_s, event.vehicle_class, event.track_id) == (0.4, TRUCK, 9)
    assert (event.plate, event.measured, event.explanation, event.place) == (
        plate,
        measured,
        "truck stood still",
        "QL13 km 22",
    )
    assert (event.model_version, event.rule_version, event.config_version) == (
        "yolov8n/1",
        "no_stopping/3",
        "synthetic/7",
    )


@pytest.mark.parametrize("vi", [False, True], ids=["english", "vietnamese"])
def test_an_explanation_past_the_events_limit_is_cut_not_lost(vi: bool) -> None:
    # A vehicle standing across many named no-stopping zones is explained zone by zone;
    # past the event's 2,000 characters the event could not be built and the violation
    # was lost.
    long = "; ".join(f"vùng cấm dừng z{k} (lề phải đoạn Km{k} Quốc lộ 13)" for k in range(60))
    violation = Violation(
        rule=ViolationType.NO_STOPPING,
        rule_version="no_stopping/8",
        config_version="synthetic/7",
        camera="cam-test",
        track_id=9,
        vehicle_class=TRUCK,
        lane=None,
        t=T0 + 30.0,
        evidence=EvidenceTimes(before=T0, at=T0 + 15.0, after=T0 + 30.0),
        measured=Measurement(dwell_s=30.0),
        explanation="short" if vi else long,
        explanation_vi=long if vi else "ngắn",
    )
    event = violation.to_event(site="ql13-km22", node="node-01", model_version="m/1")
    text = event.explanation_vi if vi else event.explanation
    assert text is not None and len(text) == 2000 and text.endswith("…")
    assert long.startswith(text[:-1])
