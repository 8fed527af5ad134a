"""Scripted rule scenes: paths that stop, reverse and change lanes; truths that hold."""

from __future__ import annotations

import math

import numpy as np
import pytest

from calibration.camera import PinholeCamera
from calibration.scenes import Leg, VehiclePath
from edge.rules.scene import parse_scene
from edge.rules_eval.script import (
    LANE_EDGES,
    RED_GRACE_S,
    RULES,
    STOP_M,
    ZONE_DWELL_S,
    ZONE_X,
    ZONE_Y,
    Cycle,
    approach_stop,
    crossing_times,
    road_layout,
    standard_rule_scenes,
    too_close,
)
from edge.scene_layout import scene_document
from roadwatch.contract import ViolationType


@pytest.fixture(scope="module")
def scenes():  # type: ignore[no-untyped-def]
    return standard_rule_scenes()


@pytest.mark.parametrize(
    ("t", "expected"),
    [
        (0.0, (0.0, 0.0)),
        (1.0, (0.0, 10.0)),  # cruising at 36 km/h
        (3.0, (0.0, 20.0)),  # braked to a stop over 2 s: 10 m more
        (5.0, (0.0, 20.0)),  # standing
        (7.0, (0.0, 17.0)),  # reversed 3 m over 2 s
        (9.0, (0.0, 17.0)),
    ],
)
def test_a_path_with_legs_brakes_stands_and_reverses(
    t: float, expected: tuple[float, float]
) -> None:
    path = VehiclePath(
        1, 0, (0.0, 0.0), (0.0, 36.0), 0.0,
        legs=(Leg(1.0, (0.0, 36.0)), Leg(2.0, (0.0, 0.0)), Leg(2.0, (0.0, 0.0)),
              Leg(1.0, (0.0, -10.8)), Leg(1.0, (0.0, 0.0))),
    )  # fmt: skip
    assert path.position(t) == pytest.approx(expected, abs=1e-9)
    assert path.positions(np.array([t]))[0] == pytest.approx(expected, abs=1e-9)


def test_vectorised_positions_match_single_ones() -> None:
    path = approach_stop(1.75, 34.5, 5.0, 40.0, 2.5).keep(2.0).then(3.0, 2.0, 30.0).path(1, 0)
    times = np.linspace(-1.0, 12.0, 131)
    many = path.positions(times)
    for t, row in zip(times, many, strict=True):
        one = path.position(float(t))
        if one is None:
            assert np.isnan(row).all()
        else:
            assert row == pytest.approx(one, abs=1e-9)


def test_approach_stop_stands_where_and_when_asked() -> None:
    path = approach_stop(1.75, 34.5, 5.0, 40.0, 2.5).keep(3.0).path(1, 0)
    assert path.position(5.0) == pytest.approx((1.75, 34.5), abs=1e-6)
    assert path.speed_at(5.0) == pytest.approx(0.0, abs=1e-6)
    assert path.position(7.5) == pytest.approx((1.75, 34.5), abs=1e-6)
    assert path.speed_at(4.0) > 5.0


def test_crossing_times_find_each_pass_and_its_direction() -> None:
    path = VehiclePath(1, 0, (0.0, 30.0), (0.0, 36.0), 0.0,
                       legs=(Leg(2.0, (0.0, 36.0)), Leg(2.0, (0.0, -36.0))))  # fmt: skip
    found = crossing_times(path, 1, 40.0, 10.0)
    assert [d for _, d in found] == [1, -1]
    assert found[0][0] == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize(
    ("dx", "dy", "close"),
    [(0.0, 7.5, True), (0.0, 8.5, False), (3.5, 0.0, False), (2.0, 5.0, True)],
)
def test_two_vehicles_are_too_close_only_in_one_lane_within_a_car_and_gap(
    dx: float, dy: float, close: bool
) -> None:
    a = np.array([[0.0, 20.0], [0.0, 21.0]])
    b = a + np.array([dx, dy])
    assert too_close(a, b) is close


def test_the_layout_makes_a_valid_scene_file_for_each_camera(scenes) -> None:  # type: ignore[no-untyped-def]
    for scene in scenes:
        config = parse_scene(scene_document(scene.layout, scene.spec.camera), scene.spec.name)
        assert len(config.lanes) == 4
        assert config.lanes[0].closed_to(
            config.lanes[0].closures[0].classes[0], config.local_time(0)
        )
        assert config.no_stopping_zones[0].dwell_s == ZONE_DWELL_S
        assert len(config.signal_heads) == 1


def test_the_standard_set_is_seeded_and_dense_enough(scenes) -> None:  # type: ignore[no-untyped-def]
    again = standard_rule_scenes()
    assert [s.spec for s in again] == [s.spec for s in scenes]
    for rule in RULES:
        violators = sum(rule in v.violations for s in scenes for v in s.truth.vehicles)
        near = sum(rule in v.near_misses for s in scenes for v in s.truth.vehicles)
        assert violators >= 20, rule
        assert near >= 20, rule


def test_no_two_scripted_vehicles_ever_share_a_lane_too_close(scenes) -> None:  # type: ignore[no-untyped-def]
    for scene in scenes:
        times = np.arange(0.0, scene.truth.duration_s, 0.1)
        tracks = [p.positions(times) for p in scene.spec.vehicles]
        for tr in tracks:
            tr[~((tr[:, 1] > -10) & (tr[:, 1] < 80))] = np.nan
        for i in range(len(tracks)):
            for j in range(i + 1, len(tracks)):
                assert not too_close(tracks[i], tracks[j]), (scene.spec.name, i + 1, j + 1)


def _cycle(scene) -> Cycle:  # type: ignore[no-untyped-def]
    phases = scene.spec.signal.phases
    if len(phases) == 1:
        return Cycle(scene.truth.duration_s)
    return Cycle(scene.truth.duration_s, red_s=phases[2].start_s, green_s=phases[3].start_s)


def test_scripted_truths_follow_from_the_paths(scenes) -> None:  # type: ignore[no-untyped-def]
    for scene in scenes:
        cycle = _cycle(scene)
        paths = {p.vehicle_id: p for p in scene.spec.vehicles}
        for v in scene.truth.vehicles:
            path = paths[v.vehicle_id]
            stop = [t for t, d in crossing_times(path, 1, STOP_M, cycle.duration_s) if d > 0]
            if ViolationType.RED_LIGHT in v.violations:
                assert cycle.red_s is not None
                moment = v.violations[ViolationType.RED_LIGHT]
                assert stop and stop[0] == pytest.approx(moment, abs=0.02)
                assert moment - cycle.red_s >= RED_GRACE_S + 0.2
            elif v.episode in ("red-runner", "yellow-crosser", "grace-crosser", "queue-1",
                               "queue-2", "stop-over-line", "back-out"):  # fmt: skip
                assert ViolationType.RED_LIGHT in v.near_misses
            else:
                assert not any(cycle.red_at(t) for t in stop), (scene.spec.name, v.vehicle_id)
            if v.episode == "grace-crosser":
                assert cycle.red_s is not None
                assert 0 < stop[0] - cycle.red_s < RED_GRACE_S
            if v.episode == "yellow-crosser":
                assert cycle.red_s is not None
                assert stop[0] < cycle.red_s
            if ViolationType.NO_STOPPING in v.violations:
                moment = v.violations[ViolationType.NO_STOPPING]
                at = path.position(moment)
                assert at is not None and path.speed_at(moment) == pytest.approx(0.0, abs=1e-6)
                assert ZONE_X[0] < at[0] < ZONE_X[1] and ZONE_Y[0] < at[1] < ZONE_Y[1]
                assert path.position(moment - ZONE_DWELL_S) == pytest.approx(at, abs=1e-6)
            if ViolationType.WRONG_WAY in v.violations:
                velocity = path.velocity_at(v.violations[ViolationType.WRONG_WAY])
                assert velocity is not None and velocity[1] < -20
            if ViolationType.SPEEDING in v.violations:
                assert path.speed_kmh > 80
            if ViolationType.SPEEDING in v.near_misses:
                assert path.speed_kmh <= 62
            if ViolationType.SOLID_LINE in v.violations:
                moment = v.violations[ViolationType.SOLID_LINE]
                at = path.position(moment)
                assert at is not None and 22.0 < at[1] < STOP_M
                assert min(abs(at[0] - e) for e in LANE_EDGES) < 0.05
            if ViolationType.FORBIDDEN_LANE in v.violations:
                assert v.kind == "truck" and path.start_m[0] < LANE_EDGES[2]


def test_road_layout_without_a_signal_has_no_head() -> None:
    camera = PinholeCamera(height_m=8, tilt_deg=14, focal_px=900, width=960, height=540)
    doc = scene_document(road_layout(None), camera)
    assert "signal_heads" not in doc
    assert not math.isnan(float(doc["lanes"][0]["polygon"][0][0]))  # type: ignore[index]
