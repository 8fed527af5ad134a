"""No stopping across a node's restart: the rule gives out its fined places as plain
values, and a new rule seeded with them does not fine again the vehicle still standing
on one, while a vehicle seen arriving there is fined as before."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest

from edge.rules.geometry import Point
from edge.rules.no_stopping import FinedPlace, NoStoppingRule
from edge.rules.plane import SceneGeometry
from edge.rules.tracks import Violation
from tests.rules_tracks import T0, Track, frames, geometry, hold, line_path, run, scene_config

GAP_S = 300.0  # same_stop_gap_s, by default
# Before the restart: car 9 parks at (900, 500) in the zone (x 800-1000, y 200-800) at
# 14:03:00, is fined 30 s on and last seen standing there at 14:03:40.
BEFORE = Track(9, hold((900, 500), 0, 40))
LAST_SEEN_S = 40.0


def places_before(metric: bool) -> tuple[FinedPlace, ...]:
    rule = NoStoppingRule(geometry(metric))
    assert [v.track_id for v in run(rule, [BEFORE])] == [9]
    return rule.fined_places()


def test_the_rule_gives_out_each_fined_place_as_its_image_point_size_and_last_sighting() -> None:
    rule = NoStoppingRule(geometry(True))
    assert rule.fined_places() == ()
    later = Track(10, line_path((950, 750), (950, 400), 0, 5) + hold((950, 400), 5, 50))
    run(rule, [BEFORE, later])
    assert rule.fined_places() == (
        FinedPlace(Point(900, 500), (1000, 1000), T0 + LAST_SEEN_S),
        FinedPlace(Point(950, 400), (1000, 1000), T0 + 50),
    )


# After the restart (seeded ``restart_s`` from 14:03:00 with the places kept before):
# the tracks seen, and those fined. The tracker starts its ids afresh.
SEED_CASES: dict[str, tuple[float, list[Track], tuple[int, ...]]] = {
    "the fined car still standing, seen again 60 s on": (
        100, [Track(1, hold((900, 500), 100, 160))], (),
    ),
    "... first seen 4 m off, half hidden, then where it stands": (
        100, [Track(1, hold((900, 540), 100, 100.5) + hold((900, 501), 100.5, 160))], (),
    ),
    "... tracked under the id the fined track had": (
        100, [Track(9, hold((900, 500), 100, 160))], (),
    ),
    "... standing on for 10 minutes, hidden 4 minutes, seen again": (
        100,
        [Track(1, hold((900, 500), 100, 700)), Track(2, hold((900, 500), 940, 1000))],
        (),
    ),
    "... seen again after the restart only 4 minutes after its last sighting": (
        280, [Track(1, hold((900, 500), 280, 340))], (),
    ),
    "a restart 6 minutes after its last sighting: the car is fined again": (
        LAST_SEEN_S + GAP_S + 1, [Track(1, hold((900, 500), 345, 400))], (1,),
    ),
    "another car seen arriving, parking on the place": (
        100,
        [Track(1, line_path((900, 750), (900, 500), 100, 103) + hold((900, 500), 103, 150))],
        (1,),
    ),
    "... under the id the fined track had (a place kept has no live ids)": (
        100,
        [Track(9, line_path((900, 750), (900, 500), 100, 103) + hold((900, 500), 103, 150))],
        (9,),
    ),
    "a car parked 5 m behind the place": (100, [Track(1, hold((900, 550), 100, 150))], (1,)),
    "the fined car drives off, another parks on the place": (
        100,
        [
            Track(1, hold((900, 500), 100, 140) + line_path((900, 500), (900, 250), 140.1, 145)),
            Track(2, line_path((900, 750), (900, 500), 145, 150) + hold((900, 500), 150, 190)),
        ],
        (2,),
    ),
    # The clock ran an hour fast before the restart: the place's last sighting is after
    # the time it is seeded at, and is taken as that time.
    "a clock set back an hour: the car seen again 60 s on": (
        LAST_SEEN_S - 3600, [Track(1, hold((900, 500), 60 - 3600, 120 - 3600))], (),
    ),
    "... and a car first seen on the place 6 minutes on": (
        LAST_SEEN_S - 3600, [Track(1, hold((900, 500), 400 - 3600, 460 - 3600))], (1,),
    ),
}  # fmt: skip


def seeded(metric: bool, restart_s: float, places: Sequence[FinedPlace]) -> NoStoppingRule:
    rule = NoStoppingRule(geometry(metric))
    rule.seed(places, T0 + restart_s)
    return rule


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
@pytest.mark.parametrize("name", list(SEED_CASES))
def test_a_rule_seeded_with_the_places_fined_before_a_restart(name: str, metric: bool) -> None:
    restart_s, tracks, fined = SEED_CASES[name]
    found = run(seeded(metric, restart_s, places_before(metric)), tracks)
    assert tuple(v.track_id for v in found) == fined, [(v.track_id, v.explanation) for v in found]
    # (without the places, the first vehicle standing its dwell after the restart is fined)
    unseeded = run(NoStoppingRule(geometry(metric)), tracks)
    assert [v.track_id for v in unseeded][:1] == [tracks[0].track_id]


@pytest.mark.parametrize(
    ("name", "restart_s", "change", "taken"),
    [
        ("taken", 100.0, {}, 1),
        ("last seen exactly same_stop_gap_s before", LAST_SEEN_S + GAP_S, {}, 1),
        ("last seen longer ago", LAST_SEEN_S + GAP_S + 0.1, {}, 0),
        ("of another image size", 100.0, {"image_size": (1920, 1080)}, 0),
        ("last seen after the seeding (a clock set back)", 0.0, {}, 1),
    ],
)
def test_which_places_a_rule_takes(
    name: str, restart_s: float, change: dict[str, object], taken: int
) -> None:
    [place] = places_before(True)
    rule = NoStoppingRule(geometry(True))
    assert rule.seed([dataclasses.replace(place, **change)], T0 + restart_s) == taken  # type: ignore[arg-type]
    last = min(place.last_t, T0 + restart_s)
    assert rule.fined_places() == ((dataclasses.replace(place, last_t=last),) if taken else ())


def test_a_place_off_the_road_plane_is_not_taken() -> None:
    def horizon(p: Point) -> Point:
        return Point(float("inf"), p.y) if (p.x, p.y) == (900, 500) else Point(p.x / 10, p.y / 10)

    [place] = places_before(True)
    assert NoStoppingRule(SceneGeometry(scene_config(), horizon)).seed([place], T0 + 100) == 0


def test_a_seeded_place_is_mapped_through_the_calibration_in_force() -> None:
    """Started again with a new calibration (its road plane's origin 4 m elsewhere): the
    place is mapped again from its image point, and the car standing on is the same stop."""

    def moved(p: Point) -> Point:
        return Point(p.x / 10, p.y / 10 + 4.0)

    rule = NoStoppingRule(SceneGeometry(scene_config(version="synthetic/8"), moved))
    assert rule.seed(places_before(True), T0 + 100) == 1
    found: list[Violation] = []
    for frame in frames([Track(1, hold((900, 500), 100, 160))], True):
        points = tuple(dataclasses.replace(p, world=moved(p.ground_px)) for p in frame.points)
        found += rule.update(dataclasses.replace(frame, points=points))
    assert found == [], [v.explanation for v in found]


def test_places_given_out_after_a_seeding_go_on_with_the_vehicle_standing_there() -> None:
    """What a seeded rule gives out at the next restart: the place, its last sighting
    that of the car standing on since."""
    rule = seeded(True, 100, places_before(True))
    run(rule, [Track(1, hold((900, 500), 100, 200))])
    assert rule.fined_places() == (FinedPlace(Point(900, 500), (1000, 1000), T0 + 200),)
