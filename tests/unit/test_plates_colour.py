from __future__ import annotations

import numpy as np
import pytest

from edge.plates.colour import plate_colour
from edge.plates.grammar import PlateKind
from edge.plates.synth import FONT_FILES, PlateSpec, render_plate
from roadwatch.contract import PlateColour
from tests.plates_support import require_fonts

SPECS = [
    PlateSpec("51F-123.45", ("51F-123.45",), PlateKind.CAR, PlateColour.WHITE),
    PlateSpec("51F-123.45", ("51F", "123.45"), PlateKind.CAR, PlateColour.YELLOW),
    PlateSpec("80A-012.34", ("80A-012.34",), PlateKind.CAR, PlateColour.BLUE),
    PlateSpec("59-X1 123.45", ("59-X1", "123.45"), PlateKind.MOTORCYCLE, PlateColour.BLUE),
    PlateSpec("TM-12-34", ("TM-12-34",), PlateKind.MILITARY, PlateColour.RED),
    PlateSpec("29-MĐ1 123.45", ("29-MĐ1", "123.45"), PlateKind.MOTORCYCLE, PlateColour.WHITE),
]


def _expose(plate: np.ndarray, gain: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    inner = plate[12:-12, 12:-12].astype(np.float32)  # the text area, inside the border
    out = inner * gain + rng.normal(0.0, 4.0, inner.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.colour}-{s.kind}-{len(s.lines)}")
@pytest.mark.parametrize("gain", [0.25, 0.6, 1.0, 1.25])
def test_colour_of_rendered_plates_across_exposure(spec: PlateSpec, gain: float) -> None:
    require_fonts()
    plate = render_plate(spec, FONT_FILES[0])
    got = plate_colour(_expose(plate, gain, seed=int(gain * 100)))
    assert got.colour is spec.colour


def test_white_plate_stays_white_under_a_mild_colour_cast() -> None:
    require_fonts()
    plate = render_plate(SPECS[0], FONT_FILES[0]).astype(np.float32)
    cast = np.clip(plate * np.array([1.15, 1.0, 0.9]) * 0.5, 0, 255).astype(np.uint8)  # BGR
    assert plate_colour(cast).colour is PlateColour.WHITE


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((0, 0, 3), np.uint8),
        np.full((20, 60, 3), 128, np.uint8),  # flat: no characters, no background
        np.zeros((20, 60), np.uint8),  # not colour
    ],
)
def test_no_colour_without_a_plate(image: np.ndarray) -> None:
    assert plate_colour(image).colour is PlateColour.UNKNOWN
