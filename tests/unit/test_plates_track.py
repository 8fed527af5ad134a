"""Frames of one vehicle read one by one and voted into the track's plate."""

from __future__ import annotations

import numpy as np

from edge.plates.grammar import PlateKind
from edge.plates.reader import PlateReader, unreadable
from edge.plates.synth import (
    FONT_FILES,
    VEHICLES,
    Condition,
    PlateSpec,
    compose,
    load_vehicle_images,
    render_plate,
)
from edge.plates.vote import PlateVote
from roadwatch.contract import PlateColour, PlateReading
from tests.plates_support import require_fonts
from tests.services import require_shared_file


def test_a_track_of_night_frames_votes_to_the_plate() -> None:
    require_fonts()
    data = require_shared_file("bangkok_junction.jpg").parent
    require_shared_file("vn_saigon.mp4")
    frames = load_vehicle_images(data)
    vehicle = VEHICLES[0]
    spec = PlateSpec("61A-905.27", ("61A", "905.27"), PlateKind.CAR, PlateColour.YELLOW)
    plate = render_plate(spec, FONT_FILES[2])
    reader = PlateReader.from_packaged_models(threads=2)
    vote = PlateVote()
    vote.add(unreadable("blank"))  # a frame lost to a lamp flash adds nothing
    for seed in range(5):
        image, _ = compose(
            vehicle, frames[vehicle], plate, Condition.NIGHT, np.random.default_rng(seed)
        )
        vote.add(reader.read(image))
    got = vote.result()
    assert got.frames >= 3
    assert isinstance(got.reading, PlateReading)
    assert got.reading.text == "61A-905.27"
    assert got.reading.valid and got.reading.lines == 2
    assert got.reading.colour is PlateColour.YELLOW
    assert 0.5 < got.reading.confidence <= 1.0
    assert got.crop is not None and got.crop.shape[0] > 10
