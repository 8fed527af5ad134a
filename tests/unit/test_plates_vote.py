from __future__ import annotations

import numpy as np
import pytest

from edge.plates.grammar import parse_plate
from edge.plates.reader import FrameRead, unreadable
from edge.plates.vote import MAX_KEPT, PlateVote
from roadwatch.contract import PlateColour, PlateReading


def frame(
    lines: list[str],
    conf: float = 0.9,
    weak: dict[int, float] | None = None,
    colour: PlateColour = PlateColour.WHITE,
    tag: int = 0,
) -> FrameRead:
    plate = parse_plate(lines)
    n = sum(len(line.replace("-", "").replace(".", "").replace(" ", "")) for line in lines)
    chars = [conf] * n
    for i, c in (weak or {}).items():
        chars[i] = c
    crop = np.full((10, 30, 3), tag, np.uint8)
    return FrameRead(plate, min(chars) if plate.valid else 0.0, tuple(chars), colour, crop)


def test_no_frames_or_only_bad_frames_is_unreadable() -> None:
    vote = PlateVote()
    assert vote.result().reading == PlateReading(text="", confidence=0.0, valid=False)
    vote.add(unreadable("blank"))
    vote.add(frame(["51F-12X.45"]))  # not a plate
    got = vote.result()
    assert not got.reading.valid and got.reading.confidence == 0.0 and got.crop is None
    assert got.frames == 0


def test_single_frame() -> None:
    vote = PlateVote()
    vote.add(frame(["59-X1", "123.45"], conf=0.8, tag=7))
    got = vote.result()
    assert got.reading.text == "59-X1 123.45"
    assert got.reading.valid and got.reading.lines == 2
    assert got.reading.confidence == pytest.approx(0.8)
    assert got.crop is not None and got.crop[0, 0, 0] == 7


def test_characters_are_voted_by_position_weighted_by_confidence() -> None:
    vote = PlateVote()
    vote.add(frame(["51F-123.45"], conf=0.9, tag=1))
    vote.add(frame(["51F-128.45"], conf=0.9, weak={5: 0.3}, tag=2))  # weakly read 8
    vote.add(frame(["51F-723.45"], conf=0.9, weak={3: 0.2}, tag=3))  # weakly read 7
    got = vote.result()
    assert got.reading.text == "51F-123.45"
    assert got.crop is not None and got.crop[0, 0, 0] == 1  # the frame that reads it exactly
    assert 0.0 < got.reading.confidence < 0.9  # the disagreement lowers it


def test_vote_combines_frames_none_of_which_is_right() -> None:
    vote = PlateVote()
    vote.add(frame(["51F-183.45"], conf=0.9, weak={4: 0.3}))
    vote.add(frame(["51F-123.46"], conf=0.9, weak={7: 0.3}))
    vote.add(frame(["61F-123.45"], conf=0.9, weak={0: 0.4}))
    assert vote.result().text == "51F-123.45"


def test_the_stronger_layout_wins_and_colour_is_voted() -> None:
    vote = PlateVote()
    vote.add(frame(["51F-1234"], conf=0.5, colour=PlateColour.BLUE))
    vote.add(frame(["51F-123.45"], conf=0.9, colour=PlateColour.YELLOW))
    vote.add(frame(["51F-123.45"], conf=0.9, colour=PlateColour.YELLOW))
    got = vote.result()
    assert got.reading.text == "51F-123.45"
    assert got.reading.colour is PlateColour.YELLOW
    assert got.frames == 3


def test_electric_plate_goes_on_the_wire_without_the_stroke() -> None:
    vote = PlateVote()
    vote.add(frame(["29-MĐ1", "123.45"]))
    got = vote.result()
    assert got.text == "29-MĐ1 123.45"
    assert got.reading.text == "29-MD1 123.45"


def test_memory_is_bounded() -> None:
    vote = PlateVote()
    for i in range(200):
        vote.add(frame([f"51F-{i:03d}.45"], conf=0.5 + i / 1000))
    assert len(vote._best) == MAX_KEPT
    assert vote.result().reading.valid
