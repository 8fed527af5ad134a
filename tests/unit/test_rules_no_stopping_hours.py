"""No stopping in a zone in force only at some hours: a car that stands on through the
hours the zone is out of force and on into its next hours is one stop, fined once, as a
traffic police officer counts it (one stop, one fine), whether the tracker follows it
throughout or loses it meanwhile (a bus stopping in front of it) and finds it again
under a new id. A vehicle seen arriving there is another stop, fined in its turn."""

from __future__ import annotations

import pytest

from edge.rules.no_stopping import NoStoppingRule
from tests.rules_tracks import BASE, Track, geometry, hold, line_path, run

# The zone is in force 14:00-14:05 and 14:20-14:30 local: from T0 (14:03:00) for 120 s,
# out of force from 120 s to 1020 s, in force again from 1020 s. Dwell 30 s.
ZONES = [
    {
        **BASE["no_stopping_zones"][0],
        "windows": [{"start": "14:00", "end": "14:05"}, {"start": "14:20", "end": "14:30"}],
    }
]
PLACE = (900.0, 500.0)
UP_THE_ROAD = (900.0, 250.0)  # (25 m away, outside the zone)
DOWN_THE_ROAD = (900.0, 750.0)  # (outside the zone: a vehicle seen arriving comes from it)

# The tracks, and those fined.
HOURS_CASES: dict[str, tuple[list[Track], tuple[int, ...]]] = {
    "parked at 14:03, seen throughout until 14:21 (fined once, at 14:03:30)": (
        [Track(9, hold(PLACE, 0, 1100))],
        (9,),
    ),
    "... hidden 3 s at 14:06 (out of force), standing on under a new id into 14:21": (
        [Track(9, hold(PLACE, 0, 200)), Track(10, hold(PLACE, 203, 1100))],
        (9,),
    ),
    "... hidden at 14:06 and at 14:13, each time a new id": (
        [
            Track(9, hold(PLACE, 0, 200)),
            Track(10, hold(PLACE, 203, 600)),
            Track(11, hold(PLACE, 603, 1100)),
        ],
        (9,),
    ),
    "... hidden 3 s just after the zone is in force again, at 14:20": (
        [Track(9, hold(PLACE, 0, 1025)), Track(10, hold(PLACE, 1028, 1100))],
        (9,),
    ),
    "... hidden 3 s at 14:06, and again at 14:20:20": (
        [
            Track(9, hold(PLACE, 0, 200)),
            Track(10, hold(PLACE, 203, 1040)),
            Track(11, hold(PLACE, 1043, 1100)),
        ],
        (9,),
    ),
    "... unseen 10 minutes meanwhile, longer than a stop is taken to go on unseen": (
        [Track(9, hold(PLACE, 0, 200)), Track(10, hold(PLACE, 810, 1100))],
        (9, 10),
    ),
    "... drives off at 14:06; another car parks there at 14:10 and stands into 14:21": (
        [
            Track(9, hold(PLACE, 0, 200) + line_path(PLACE, UP_THE_ROAD, 200.1, 205)),
            Track(10, line_path(DOWN_THE_ROAD, PLACE, 420, 425) + hold(PLACE, 425, 1100)),
        ],
        (9, 10),
    ),
    "a car parked at 14:08 (out of force), standing into 14:21: fined at 14:20:30": (
        [Track(9, line_path(DOWN_THE_ROAD, PLACE, 300, 305) + hold(PLACE, 305, 1100))],
        (9,),
    ),
    "... hidden 3 s at 14:10, standing on under a new id into 14:21": (
        [
            Track(9, line_path(DOWN_THE_ROAD, PLACE, 300, 305) + hold(PLACE, 305, 420)),
            Track(10, hold(PLACE, 423, 1100)),
        ],
        (10,),
    ),
}


@pytest.mark.parametrize("metric", [True, False], ids=["metres", "pixels"])
@pytest.mark.parametrize("name", list(HOURS_CASES))
def test_a_stop_through_the_hours_a_zone_is_out_of_force_is_fined_once(
    name: str, metric: bool
) -> None:
    tracks, fined = HOURS_CASES[name]
    found = run(NoStoppingRule(geometry(metric, no_stopping_zones=ZONES)), tracks)
    assert tuple(v.track_id for v in found) == fined, [(v.track_id, v.explanation) for v in found]
