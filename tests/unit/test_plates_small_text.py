"""Small plate text needs surer characters before a reading counts as a valid plate."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from edge.plates.decode import ALPHABET, LineScores
from edge.plates.reader import SMALL_TEXT_PX, FrameRead, PlateReader
from edge.plates.vote import PlateVote

Image8 = np.ndarray


def line_scores(text: str, p: float) -> LineScores:
    """A recognized line spelling ``text``: its second character at probability ``p``, the
    others at 0.97 (a weak character the grammar cannot drop or swap for another format)."""
    steps: list[dict[str, float]] = []
    for i, ch in enumerate(text):
        steps += [{ch: p if i == 1 else 0.97}, {}]
    probs = np.full((len(steps), len(ALPHABET) + 1), 1e-6, np.float32)
    for t, step in enumerate(steps):
        for ch, q in step.items():
            probs[t, ALPHABET.index(ch) + 1] = q
        probs[t, 0] = max(1e-6, 1.0 - sum(step.values()))
    logp = np.log(probs)
    return LineScores(logp, float(logp.max(axis=1).sum()))


def quad(x0: float, y0: float, width: float, height: float) -> np.ndarray:
    return np.array(
        [[x0, y0], [x0 + width, y0], [x0 + width, y0 + height], [x0, y0 + height]],
        dtype=np.float32,
    )


def fake_reader(lines: Sequence[tuple[str, float, float]]) -> PlateReader:
    """A reader whose detector finds ``lines`` (text, line height px, weakest probability),
    one above the other."""
    quads = []
    y = 10.0
    for _, height, _ in lines:
        quads.append(quad(10.0, y, 5.0 * height, height))
        y += height * 1.2
    by_area = sorted(range(len(lines)), key=lambda i: 5.0 * lines[i][1] ** 2, reverse=True)

    def detect(image: Image8) -> list[np.ndarray]:
        return list(quads)

    def recognize(crops: Sequence[Image8]) -> list[LineScores]:
        # the reader hands the crops over largest first
        order = [by_area[i] for i in range(len(crops))]
        return [line_scores(lines[i][0], lines[i][2]) for i in order]

    def crop_line(image: Image8, q: np.ndarray) -> Image8:
        return np.full((8, 32, 3), 200, np.uint8)

    return PlateReader(detect, recognize, crop_line)


def vehicle() -> Image8:
    rng = np.random.default_rng(5)
    return rng.normal(90, 20, (200, 300, 3)).clip(0, 255).astype(np.uint8)


def test_small_text_with_an_unsure_character_is_a_guess() -> None:
    # 93F-434.74 at 18 px, its weakest character at 0.6: above the decoder's floor of 0.5
    got = fake_reader([("93F43474", 18.0, 0.6)]).read(vehicle())
    assert got.plate.text == "93F-434.74"
    assert not got.plate.valid and got.confidence == 0.0
    assert "small text" in got.reason


def test_small_text_read_surely_stays_valid() -> None:
    got = fake_reader([("93F43474", 18.0, 0.97)]).read(vehicle())
    assert got.plate.valid and got.plate.text == "93F-434.74"
    assert got.confidence == pytest.approx(0.97, abs=0.01)
    assert got.reason == ""


def test_large_text_keeps_the_decoders_floor() -> None:
    got = fake_reader([("93F43474", SMALL_TEXT_PX + 6.0, 0.6)]).read(vehicle())
    assert got.plate.valid and got.plate.text == "93F-434.74"
    assert got.confidence == pytest.approx(0.6, abs=0.01)


def test_the_smaller_line_of_a_two_line_plate_decides() -> None:
    big = SMALL_TEXT_PX + 4.0
    small = SMALL_TEXT_PX - 6.0
    got = fake_reader([("59X1", big, 0.8), ("12345", small, 0.8)]).read(vehicle())
    assert got.plate.text == "59-X1 123.45" and got.plate.lines == 2
    assert not got.plate.valid
    got = fake_reader([("59X1", big, 0.8), ("12345", big, 0.8)]).read(vehicle())
    assert got.plate.valid and got.plate.text == "59-X1 123.45"


def test_a_track_seen_only_in_small_unsure_views_has_no_valid_plate() -> None:
    vote = PlateVote()
    reads: list[FrameRead] = [
        fake_reader([("53F13474", 20.0, 0.6)]).read(vehicle()) for _ in range(3)
    ]
    for read in reads:
        vote.add(read)
    result = vote.result()
    assert result.frames == 0
    assert not result.reading.valid and result.reading.text == ""
