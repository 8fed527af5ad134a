"""All six rules together on one synthetic scene, with the signal read from lamp strengths."""

from __future__ import annotations

import pytest

from edge.rules.engine import RULES, RuleSet
from edge.rules.plane import SceneGeometry
from edge.rules.signal import LampStrengths, SignalState
from edge.rules.speeding import SpeedingRule
from edge.rules.tracks import Violation
from roadwatch.contract import VehicleClass, ViolationEvent, ViolationType, parse_payload, to_wire
from tests.rules_tracks import T0, Track, frames, geometry, hold, line_path, scene_config

GREEN_LAMP, RED_LAMP = LampStrengths(10, 12, 190), LampStrengths(210, 15, 10)


def drive(rules: RuleSet, tracks: list[Track], red_from_s: float) -> list[Violation]:
    """Feed frames in time order; the lamp turns red at ``red_from_s``."""
    state = SignalState("main", rules.scene.config.lamp)
    found: list[Violation] = []
    for frame in frames(tracks, rules.scene.metric):
        state.on_lamp(frame.t, RED_LAMP if frame.t >= T0 + red_from_s else GREEN_LAMP)
        found.extend(rules.update(frame, {"main": state}))
    return found


TRACKS = [
    Track(1, line_path((450, 900), (450, 200), 8.0, 15.0)),  # runs the red (stop line at 12 s)
    Track(2, line_path((420, 690), (420, 300), 0.0, 2.0), speeds=[(95.0, 2.0)] * 21),  # speeds
    Track(3, line_path((540, 300), (540, 950), 0.0, 6.0)),  # wrong way in lane 1
    Track(
        4, line_path((480, 950), (480, 300), 0.0, 5.0), vehicle=VehicleClass.TRUCK
    ),  # lane 1 is closed to trucks
    Track(5, line_path((520, 900), (680, 500), 0.0, 3.0)),  # crosses the solid line
    Track(6, line_path((900, 950), (900, 500), 0.0, 3.0) + hold((900, 500), 3.0, 40.0)),  # parks
    Track(7, line_path((460, 900), (460, 200), 0.0, 7.0)),  # lawful: through on green
    Track(8, line_path((700, 900), (700, 200), 0.0, 7.0), speeds=[(70.0, 2.0)] * 71),  # lawful
]


def test_each_rule_finds_its_vehicle_and_nothing_else() -> None:
    rules = RuleSet(geometry(True))
    assert rules.unavailable == {}
    found = drive(rules, TRACKS, red_from_s=10.0)
    by_rule = {v.rule: v.track_id for v in found}
    assert len(found) == 6, [v.explanation for v in found]
    assert by_rule == {
        ViolationType.RED_LIGHT: 1,
        ViolationType.SPEEDING: 2,
        ViolationType.WRONG_WAY: 3,
        ViolationType.FORBIDDEN_LANE: 4,
        ViolationType.SOLID_LINE: 5,
        ViolationType.NO_STOPPING: 6,
    }
    red = next(v for v in found if v.rule is ViolationType.RED_LIGHT)
    # The lamp turned red in the frame at 10.0 s; the stop line was crossed at 12.0 s.
    assert red.measured.time_since_red_s is not None
    assert abs(red.measured.time_since_red_s - 2.0) < 0.11


def test_violations_become_valid_contract_events() -> None:
    for v in drive(RuleSet(geometry(True)), TRACKS, red_from_s=10.0):
        event = v.to_event(site="ql13-km22", node="node-01", model_version="yolov8n/1")
        again = parse_payload(ViolationEvent, to_wire(event))
        assert (again.type, again.track_id, again.config_version) == (
            v.rule,
            v.track_id,
            "synthetic/7",
        )
        assert again.occurred_at.timestamp() == round(v.t, 6)


def test_disabled_and_unavailable_rules() -> None:
    config = scene_config().model_dump(mode="json")
    config["rules"]["solid_line"]["enabled"] = False
    rules = RuleSet(geometry(False, rules=config["rules"], speed_traps=[]))
    kinds = {r.rule for r in rules.rules}
    assert (
        ViolationType.SOLID_LINE not in kinds and ViolationType.SOLID_LINE not in rules.unavailable
    )
    assert set(rules.unavailable) == {ViolationType.SPEEDING}
    assert "calibrate the camera" in rules.unavailable[ViolationType.SPEEDING]


@pytest.mark.parametrize("disabled", list(RULES), ids=[t.value for t in RULES])
def test_disabling_one_rule_leaves_the_other_five(disabled: ViolationType) -> None:
    config = scene_config().model_dump(mode="json")
    config["rules"][disabled.value]["enabled"] = False
    rules = RuleSet(geometry(True, rules=config["rules"]))
    assert rules.unavailable == {}
    assert [r.rule for r in rules.rules] == [t for t in RULES if t is not disabled]


class BrokenSpeedingRule(SpeedingRule):
    def __init__(self, scene: SceneGeometry) -> None:
        raise ValueError("speeding rule broken")


def test_a_rule_that_breaks_is_not_passed_off_as_unavailable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(RULES, ViolationType.SPEEDING, BrokenSpeedingRule)
    with pytest.raises(ValueError, match="speeding rule broken"):
        RuleSet(geometry(True))
